"""Words shown to people, Vietnamese first. Names of places and organisations are never here:
they come from the config."""

from __future__ import annotations

from district.config import Lang

TEXT: dict[str, tuple[str, str]] = {
    # causes (report summary)
    "never_connected": ("chưa từng kết nối", "never connected"),
    "offline": ("không kết nối trong suốt thời gian", "no contact during the window"),
    "link_down": ("bật tại chỗ nhưng mất kết nối (số liệu gửi muộn)",
                  "powered up locally but its link was down (late evidence)"),
    "not_powered": ("có kết nối nhưng thiết bị chưa bật lúc bắt đầu",
                    "online, but the devices were not on by the start"),
    "no_response": ("không có người trực (không phản hồi kiểm tra)",
                    "nobody there (no response to the check)"),
    "refused_attempt": ("có người tìm cách tắt tại chỗ (đã bị từ chối)",
                        "a local switch-off was tried and refused"),
    "power_lost": ("mất điện hoặc phần mềm dừng trước khi kết thúc",
                   "lost power or its agent stopped before the release"),
    "link_lost": ("mất kết nối trước khi kết thúc", "link lost before the release"),
    # lists
    "not_switched_on": ("Không bật", "Not switched on"),
    "unstaffed": ("Bật nhưng không có người ở lại kiểm tra micrô, loa",
                  "Switched on but nobody stayed to test microphone and speakers"),
    "switched_off_early": ("Tắt trước khi có thông báo kết thúc",
                           "Switched off before the end was announced"),
    # losses before the release
    "loss_power": ("mất điện", "power lost"),
    "loss_agent_stopped": ("phần mềm dừng", "agent stopped"),
    "loss_link": ("mất kết nối", "link lost"),
    # window kinds
    "test": ("kiểm tra kết nối", "test connection"),
    "session": ("phiên họp trực tuyến", "online session"),
    # misc
    "report": ("Báo cáo", "Report"),
    "rooms": ("điểm cầu", "rooms"),
    "all_ok": ("Tất cả điểm cầu đều bật đúng giờ, có người trực và giữ kết nối đến khi kết thúc.",
               "Every room was on in time, staffed, and stayed on until the end."),
    "not_started": ("(chưa bắt đầu: chỉ liệt kê điểm cầu chưa từng kết nối)",
                    "(not started yet: only rooms never heard from are listed)"),
    "provisional": ("(tạm thời: chưa có thông báo kết thúc)",
                    "(provisional: not yet marked complete)"),
    "late_note": ("Có số liệu gửi muộn (đánh dấu ⧗).", "Some evidence was delivered late (⧗)."),
    "none": ("không có", "none"),
    "good": ("tốt", "good"),
    "poor": ("kém", "poor"),
    "yes": ("có", "yes"),
    "no": ("không", "no"),
}


def t(key: str, lang: Lang = "vi") -> str:
    """The text for ``key`` in ``lang`` (the key itself if unknown)."""
    pair = TEXT.get(key)
    if pair is None:
        return key
    return pair[1] if lang == "en" else pair[0]
