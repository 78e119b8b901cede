"""The LED language: one table from room conditions to blink patterns.

The operator learns a handful of patterns; the table below is the single source of truth and
``docs/led.md`` is generated from it (a test keeps them equal).
"""

from __future__ import annotations

from dataclasses import dataclass

Colour = tuple[float, float, float]


@dataclass(frozen=True)
class LedPattern:
    """How the status LED looks: a colour (for an RGB LED) blinking ``on_s``/``off_s``.

    ``off_s == 0`` means steady. A single-colour LED shows the same timing in its one colour,
    so every pattern must also be distinguishable by timing alone.
    """

    name: str
    colour: Colour
    on_s: float
    off_s: float
    vi: str
    en: str
    colour_vi: str
    colour_en: str

    @property
    def steady(self) -> bool:
        return self.off_s == 0


RED: Colour = (1.0, 0.0, 0.0)
GREEN: Colour = (0.0, 1.0, 0.0)
BLUE: Colour = (0.0, 0.0, 1.0)
AMBER: Colour = (1.0, 1.0, 0.0)  # red + green: pins are switched, not dimmed
WHITE: Colour = (1.0, 1.0, 1.0)

# Highest priority first: the first row whose condition holds is what the LED shows.
PATTERNS: tuple[LedPattern, ...] = (
    LedPattern("refused", RED, 0.1, 0.1,
               "Không được tắt: đang có phiên họp hoặc kiểm tra của huyện. Hãy để thiết bị bật.",
               "Switch-off refused: a district session or test is on. Leave the room on.",
               "đỏ, nháy rất nhanh", "red, very fast flashing"),
    LedPattern("check_requested", WHITE, 0.5, 0.5,
               "Huyện hỏi có người trực không: bấm nút một lần để trả lời.",
               "The district asks whether someone is there: press the button once.",
               "trắng, nháy đều mỗi giây", "white, even blink once a second"),
    LedPattern("fault", RED, 1.0, 1.0,
               "Thiết bị bị lỗi: xem lệnh 'diemcau-agent status' hoặc gọi hỗ trợ kỹ thuật.",
               "A device is faulty: see 'diemcau-agent status' or call technical support.",
               "đỏ, nháy chậm", "red, slow blink"),
    LedPattern("powering", AMBER, 0.3, 0.3,
               "Đang bật hoặc tắt thiết bị theo thứ tự, xin chờ.",
               "Switching devices on or off in order, please wait.",
               "vàng, nháy nhanh", "yellow, quick blink"),
    LedPattern("no_broker", BLUE, 0.2, 2.8,
               "Mất kết nối với huyện; phòng vẫn hoạt động theo lịch đã lưu.",
               "No link to the district; the room still follows its saved schedule.",
               "xanh dương, chớp ngắn mỗi 3 giây", "blue, short flash every 3 s"),
    LedPattern("window_active", GREEN, 1.0, 0.0,
               "Đang trong giờ kiểm tra / họp: giữ phòng bật và có người trực.",
               "A test or session is on: keep the room on and attended.",
               "xanh lá, sáng liên tục", "green, steady"),
    LedPattern("on", GREEN, 2.0, 1.0,
               "Thiết bị đang bật, không có lịch họp lúc này.",
               "Devices are on; no session is scheduled now.",
               "xanh lá, sáng dài tắt ngắn", "green, long on, short off"),
    LedPattern("idle", GREEN, 0.1, 4.9,
               "Phòng đang tắt, trợ lý hoạt động bình thường.",
               "The room is off; the agent is running normally.",
               "xanh lá, chớp ngắn mỗi 5 giây", "green, short flash every 5 s"),
)

BY_NAME: dict[str, LedPattern] = {p.name: p for p in PATTERNS}


def led_table_markdown() -> str:
    """The operator's LED guide, Vietnamese first, generated from ``PATTERNS``."""
    rows = [
        "| Đèn / LED | Ý nghĩa — việc cần làm | Meaning — what to do |",
        "|---|---|---|",
    ]
    for p in PATTERNS:
        rows.append(f"| {p.colour_vi} / {p.colour_en} (`{p.name}`) | {p.vi} | {p.en} |")
    return "\n".join(rows) + "\n"
