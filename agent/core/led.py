"""The LED language: one table from room conditions to blink patterns.

The operator learns a handful of patterns; the table below is the single source of truth and
``docs/led.md`` is generated from it (a test keeps them equal). The texts name the organisation
the room answers to as the site config calls it (``site.centre``), never a fixed word.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, replace
from functools import lru_cache
from types import MappingProxyType

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
PURPLE: Colour = (1.0, 0.0, 1.0)  # red + blue

DEFAULT_CENTRE: tuple[str, str] = ("trung tâm", "the centre")
"""What the texts call the organisation the room answers to, Vietnamese then English, when the
site config does not name it (``site.centre``)."""

# Highest priority first: the first row whose condition holds is what the LED shows. Texts say
# ``{centre}`` where they name the organisation the room answers to.
TEMPLATES: tuple[LedPattern, ...] = (
    LedPattern("refused", RED, 0.1, 0.1,
               "Không được tắt: đang có phiên họp hoặc kiểm tra của {centre}. "
               "Hãy để thiết bị bật.",
               "Switch-off refused: a meeting or test of {centre} is on. Leave the room on.",
               "đỏ, nháy rất nhanh", "red, very fast flashing"),
    LedPattern("help_requested", PURPLE, 0.1, 0.9,
               "Đã gửi yêu cầu trợ giúp tới {centre}; xin chờ được liên lạc lại.",
               "Help request sent to {centre}; please wait to be contacted.",
               "tím, chớp ngắn mỗi giây", "purple, short flash every second"),
    LedPattern("check_requested", WHITE, 0.5, 0.5,
               "Có câu hỏi từ {centre}: có người trực không? Bấm nút một lần để trả lời.",
               "A question from {centre}: is someone there? Press the button once to answer.",
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
               "Mất kết nối với {centre}; phòng vẫn hoạt động theo lịch đã lưu.",
               "No link to {centre}; the room still follows its saved schedule.",
               "xanh dương, chớp ngắn mỗi 3 giây", "blue, short flash every 3 s"),
    LedPattern("window_active", GREEN, 1.0, 0.0,
               "Đang trong giờ kiểm tra / họp: giữ phòng bật và có người trực.",
               "A test or meeting is on: keep the room on and attended.",
               "xanh lá, sáng liên tục", "green, steady"),
    LedPattern("on", GREEN, 2.0, 1.0,
               "Thiết bị đang bật, không có lịch họp lúc này.",
               "Devices are on; no meeting is scheduled now.",
               "xanh lá, sáng dài tắt ngắn", "green, long on, short off"),
    LedPattern("idle", GREEN, 0.1, 4.9,
               "Phòng đang tắt, trợ lý hoạt động bình thường.",
               "The room is off; the agent is running normally.",
               "xanh lá, chớp ngắn mỗi 5 giây", "green, short flash every 5 s"),
)


@lru_cache(maxsize=8)
def patterns(centre: tuple[str, str] = DEFAULT_CENTRE) -> Mapping[str, LedPattern]:
    """Every pattern by name, in priority order, its texts naming ``centre`` (Vietnamese,
    English)."""
    return MappingProxyType({p.name: replace(p, vi=p.vi.format(centre=centre[0]),
                                             en=p.en.format(centre=centre[1]))
                             for p in TEMPLATES})


PATTERNS: tuple[LedPattern, ...] = tuple(patterns().values())
"""The patterns in priority order, naming the default centre."""
BY_NAME: Mapping[str, LedPattern] = patterns()


def led_table_markdown(centre: tuple[str, str] = DEFAULT_CENTRE) -> str:
    """The operator's LED guide, Vietnamese first, generated from the patterns."""
    rows = [
        "| Đèn / LED | Ý nghĩa — việc cần làm | Meaning — what to do |",
        "|---|---|---|",
    ]
    for p in patterns(centre).values():
        rows.append(f"| {p.colour_vi} / {p.colour_en} (`{p.name}`) | {p.vi} | {p.en} |")
    return "\n".join(rows) + "\n"
