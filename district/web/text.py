"""The dashboard's words, Vietnamese first, English second (one language at a time).

Words the report shares (causes, lists, window kinds, good/poor/none) come from
:mod:`district.i18n`; names of places and organisations come from the config, never from here.
"""

from __future__ import annotations

from collections.abc import Callable

from district.config import Lang
from district.health import Problem
from district.i18n import TEXT as SHARED

WORDS: dict[str, tuple[str, str]] = {
    # frame
    "dashboard": ("Bảng điều khiển điểm cầu", "Room dashboard"),
    "nav_rooms": ("Điểm cầu", "Rooms"),
    "nav_windows": ("Khung giờ", "Windows"),
    "nav_alerts": ("Cảnh báo", "Alerts"),
    "logout": ("Đăng xuất", "Log out"),
    "switch_lang": ("English", "Tiếng Việt"),
    "role_operator": ("điều hành", "operator"),
    "role_viewer": ("chỉ xem", "viewer"),
    "live_on": ("trực tiếp", "live"),
    "live_off": ("mất kết nối trực tiếp, đang thử lại…", "live link lost, retrying…"),
    # login
    "login": ("Đăng nhập", "Log in"),
    "user": ("Tên đăng nhập", "User name"),
    "password": ("Mật khẩu", "Password"),
    "login_failed": ("Sai tên đăng nhập hoặc mật khẩu.", "Wrong user name or password."),
    "login_wait": ("Quá nhiều lần đăng nhập sai. Hãy thử lại sau {s} giây.",
                   "Too many failed log-ins. Try again in {s} seconds."),
    "session_needed": ("Cần đăng nhập.", "Please log in."),
    # refusals
    "csrf": ("Mã bảo vệ biểu mẫu (CSRF) thiếu hoặc sai: hãy tải lại trang rồi thử lại.",
             "The form's protection token (CSRF) is missing or wrong: reload the page and "
             "try again."),
    "viewer_refused": ("Tài khoản chỉ xem không được thao tác.",
                       "A viewer account may look but not act."),
    "not_found": ("Không tìm thấy.", "Not found."),
    # availability
    "online": ("trực tuyến", "online"),
    "offline": ("mất kết nối", "offline"),
    "never_connected": ("chưa từng kết nối", "never connected"),
    # rooms page
    "rooms_title": ("Tất cả điểm cầu", "Every room"),
    "filter": ("Lọc", "Filter"),
    "group": ("Cụm", "Group"),
    "all_groups": ("Tất cả các cụm", "All groups"),
    "problem": ("Vấn đề", "Problem"),
    "any": ("Tất cả", "All"),
    "sort": ("Sắp xếp", "Sort"),
    "sort_roster": ("Theo danh sách", "Roster order"),
    "sort_name": ("Theo tên", "By name"),
    "sort_problems": ("Có vấn đề trước", "Problems first"),
    "sort_last_seen": ("Lâu chưa thấy trước", "Longest unseen first"),
    "search": ("Tìm", "Search"),
    "page": ("Trang", "Page"),
    "prev": ("‹ Trước", "‹ Previous"),
    "next": ("Sau ›", "Next ›"),
    "shown": ("{n}/{total} điểm cầu", "{n} of {total} rooms"),
    "last_seen": ("Lần cuối", "Last seen"),
    "never": ("chưa bao giờ", "never"),
    "locked": ("Khóa", "Locked"),
    "unlocked": ("không khóa", "not locked"),
    "operator_present": ("Có người", "Operator in"),
    "check_pending": ("Đang hỏi người trực", "Check pending"),
    "check_pending_tile": ("Đang hỏi", "Asking"),
    "help": ("Xin hỗ trợ", "Help asked"),
    "refused_tile": ("từ chối tắt", "off refused"),
    "refused_now": ("Khung giờ đang diễn ra", "Window on now"),
    "phone": ("Điện thoại", "Phone"),
    "missing_events": ("thiếu {n} sự kiện", "{n} events missing"),
    "power": ("Nguồn", "Power"),
    "health": ("Tình trạng", "Health"),
    "no_state": ("chưa có trạng thái", "no state yet"),
    # problems (filter)
    "p_problems": ("Mọi vấn đề", "Any problem"),
    "with_problems": ("có vấn đề", "with problems"),
    "p_offline": ("Mất kết nối / chưa kết nối", "Offline or never connected"),
    "p_alerts": ("Có cảnh báo", "Open alerts"),
    "p_fault": ("Thiết bị lỗi", "Device fault"),
    "p_help": ("Xin hỗ trợ", "Asking for help"),
    "p_refused": ("Tắt bị từ chối", "Switch-off refused"),
    "p_schedule": ("Chưa nhận lịch", "Schedule not applied"),
    "p_locked": ("Đang khóa", "Locked"),
    # power and device words
    "on": ("bật", "on"),
    "off": ("tắt", "off"),
    "mixed": ("bật một phần", "partly on"),
    "unknown": ("không rõ", "unknown"),
    "ok": ("tốt", "ok"),
    "degraded": ("suy giảm", "degraded"),
    "fault": ("lỗi", "fault"),
    "in_call": ("đang họp", "in a call"),
    # schedule status
    "sched_none": ("không có lịch", "no schedule"),
    "sched_queued": ("lịch chưa gửi", "schedule not sent yet"),
    "sched_published": ("đã gửi lịch, chưa nhận", "schedule sent, not applied"),
    "sched_applied": ("đã nhận lịch", "schedule applied"),
    "sched_rejected": ("từ chối lịch", "schedule rejected"),
    # alerts
    "alerts_title": ("Cảnh báo cần xử lý", "Alerts that need a person"),
    "alerts_none": ("Không có cảnh báo nào đang chờ.", "No alert is waiting."),
    "alerts_more": ("và {n} cảnh báo khác", "and {n} more"),
    "take": ("Tiếp nhận", "Take"),
    "taken_by": ("{who} tiếp nhận lúc {when}", "taken by {who} at {when}"),
    "a_help": ("Điểm cầu xin hỗ trợ", "Room asks for help"),
    "a_device_fault": ("Thiết bị lỗi", "Device fault"),
    "a_identity_changed": ("Thiết bị bị thay (đổi số sê-ri)", "Device swapped (serial changed)"),
    "a_schedule_not_applied": ("Chưa nhận lịch trước khung giờ",
                               "Schedule not applied before the window"),
    "a_offline_in_window": ("Mất kết nối trong khung giờ", "Offline during a window"),
    "recent_taken": ("Đã tiếp nhận gần đây", "Recently taken"),
    "raised_at": ("Lúc", "Raised"),
    "note": ("Ghi chú", "Note"),
    # room page
    "room": ("Điểm cầu", "Room"),
    "timeline": ("Diễn biến", "Timeline"),
    "last_24h": ("24 giờ qua", "last 24 hours"),
    "lane_link": ("Kết nối", "Link"),
    "lane_power": ("Nguồn", "Power"),
    "lane_lock": ("Khóa", "Lock"),
    "lane_events": ("Sự kiện", "Events"),
    "lane_commands": ("Lệnh", "Commands"),
    "events": ("Sự kiện gần đây", "Recent events"),
    "commands": ("Lệnh đã gửi", "Commands sent"),
    "actions": ("Thao tác", "Actions"),
    "power_on": ("Bật nguồn", "Power on"),
    "power_off": ("Tắt nguồn", "Power off"),
    "override": ("Ghi đè khóa (phòng đang khóa)", "Override the lock (room is locked)"),
    "reason": ("Lý do", "Reason"),
    "operator_check": ("Hỏi người trực", "Operator check"),
    "answer_help": ("Trả lời yêu cầu hỗ trợ", "Answer help"),
    "contacts": ("Liên hệ", "Contacts"),
    "devices": ("Thiết bị", "Devices"),
    "host": ("Máy tính điểm cầu", "Room computer"),
    "late": ("gửi muộn", "late"),
    "time": ("Thời gian", "Time"),
    "kind": ("Loại", "Kind"),
    "detail": ("Chi tiết", "Detail"),
    "who": ("Người gửi", "Sender"),
    "reply": ("Trả lời", "Reply"),
    "window": ("Khung giờ", "Window"),
    # command statuses
    "c_queued": ("chưa gửi", "not sent yet"),
    "c_sent": ("chưa có trả lời", "no answer yet"),
    "c_accepted": ("đã nhận", "accepted"),
    "c_refused": ("từ chối", "refused"),
    "c_invalid": ("không hợp lệ", "invalid"),
    "sent_to": ("Đã gửi «{what}» tới {n} điểm cầu:", "Sent “{what}” to {n} rooms:"),
    # windows
    "windows_title": ("Khung giờ kiểm tra và phiên họp", "Test and session windows"),
    "new_window": ("Lên lịch khung giờ", "Schedule a window"),
    "w_kind": ("Loại", "Kind"),
    "w_title": ("Tiêu đề", "Title"),
    "w_start": ("Bắt đầu", "Start"),
    "w_end": ("Kết thúc dự kiến", "Planned end"),
    "w_rooms": ("Điểm cầu", "Rooms"),
    "w_all": ("Tất cả điểm cầu", "All rooms"),
    "w_group": ("Một cụm", "A group"),
    "w_some": ("Chọn điểm cầu", "Chosen rooms"),
    "w_duration": ("Thời lượng (phút) nếu bắt đầu ngay", "Duration (minutes) if started now"),
    "schedule_btn": ("Lên lịch", "Schedule"),
    "start_now": ("Bắt đầu ngay", "Start now"),
    "w_status": ("Trạng thái", "Status"),
    "s_scheduled": ("sắp tới", "scheduled"),
    "s_active": ("đang diễn ra", "running"),
    "s_ended": ("hết giờ, chưa kết thúc", "past its end, not complete"),
    "s_completed": ("đã kết thúc", "complete"),
    "no_windows": ("Chưa có khung giờ nào.", "No windows yet."),
    "show_all": ("Xem tất cả", "Show all"),
    "created_by": ("Người tạo", "Created by"),
    "progress": ("Tiến độ", "Progress"),
    "pr_rooms": ("điểm cầu", "rooms"),
    "pr_online": ("trực tuyến", "online"),
    "pr_on": ("đã bật", "on"),
    "pr_locked": ("đã khóa", "locked"),
    "pr_checked_in": ("có người trực", "checked in"),
    "pr_refused": ("có lần tắt bị từ chối", "refused a switch-off"),
    "pr_schedule": ("đã nhận lịch", "schedule applied"),
    "pr_results": ("đã ghi kết quả", "results recorded"),
    "complete": ("Đánh dấu kết thúc", "Mark complete"),
    "complete_confirm": ("Kết thúc khung giờ này? Các điểm cầu sẽ được phép tắt.",
                         "Mark this window complete? Rooms may then switch off."),
    "check_all": ("Hỏi người trực (tất cả)", "Operator check (all rooms)"),
    "check_one": ("Hỏi", "Check"),
    "mic": ("Micrô", "Mic"),
    "speaker": ("Loa", "Speakers"),
    "attendance": ("Số người dự", "Attendance"),
    "save": ("Lưu", "Save"),
    "saved_by": ("{who} lúc {when}", "{who} at {when}"),
    "report": ("Báo cáo", "Report"),
    "report_provisional": ("Báo cáo tạm thời", "Provisional report"),
    "printable": ("Bản in", "Printable page"),
    "csv": ("Tải CSV", "Download CSV"),
    "json": ("JSON", "JSON"),
    "checked_in_at": ("có người lúc {t}", "checked in at {t}"),
    "not_checked_in": ("chưa có người xác nhận", "no check-in yet"),
    "refused_n": ("{n} lần tắt bị từ chối", "{n} refused switch-offs"),
    "sched_warning": ("Chưa nhận lịch trước giờ bắt đầu!",
                      "Schedule not applied before the start!"),
    "completed_at": ("Kết thúc lúc {t} ({who})", "Completed at {t} ({who})"),
    "last_command": ("Lệnh gần nhất", "Last command"),
    "and_more": ("và {n} điểm cầu khác", "and {n} more rooms"),
    # form errors not from the service
    "bad_time": ("không phải thời điểm hợp lệ (ví dụ 29/11/2026 09:00)",
                 "not a valid time (e.g. 2026-11-29 09:00)"),
    "bad_number": ("phải là một số", "must be a number"),
    "bad_whole": ("phải là số nguyên từ 0", "must be a whole number from 0"),
    "required": ("không được để trống", "must not be empty"),
    "bad_choice": ("lựa chọn không hợp lệ", "not one of the choices"),
    "saved": ("Đã lưu.", "Saved."),
    # the recording itself (district/health.py), above the alerts
    "rec_who_one": ("Bộ ghi của bảng điều khiển", "The console's recorder"),
    "rec_who_part": ("Phần ghi {part}/{parts} ({n} điểm cầu)",
                     "Recorder part {part} of {parts} ({n} rooms)"),
    "rec_who_extra": ("Phần ghi {part} ({n} điểm cầu)", "Recorder part {part} ({n} rooms)"),
    "rec_stale_one": ("trạng thái các điểm cầu có thể đã cũ",
                      "the rooms' status may be out of date"),
    "rec_stale_part": ("trạng thái các điểm cầu của phần này có thể đã cũ",
                       "the status of this part's rooms may be out of date"),
    "rec_why_refused": ("máy chủ từ chối đăng nhập: kiểm tra tài khoản và chứng chỉ",
                        "the broker refused the login: check the account and certificate"),
    "rec_why_unreachable": ("không tới được máy chủ: kiểm tra mạng và địa chỉ",
                            "the broker cannot be reached: check the network and address"),
    "rec_never_started": ("{who} chưa chạy: {stale}.", "{who} has not started: {stale}."),
    "rec_stopped": ("{who} đã ngừng ghi từ {at}: {stale}.",
                    "{who} has stopped recording since {at}: {stale}."),
    "rec_link_down": ("{who} mất kết nối tới máy chủ MQTT từ {at}{why}: {stale}.",
                      "{who} has lost its MQTT broker link since {at}{why}: {stale}."),
    "rec_not_connected": ("{who} chưa kết nối được tới máy chủ MQTT{why}: {stale}.",
                          "{who} has not reached the MQTT broker{why}: {stale}."),
    "rec_config_differs": ("{who} chạy với cấu hình khác (số phần hoặc danh sách điểm cầu): "
                           "có điểm cầu không được ghi hoặc bị ghi hai lần; hãy cập nhật cấu "
                           "hình và khởi động lại phần này.",
                           "{who} runs with another configuration (number of parts or "
                           "roster): some rooms are recorded twice or not at all; update its "
                           "configuration and restart it."),
    "rec_extra_part": ("{who} vẫn chạy dù cấu hình chỉ có {parts} phần: các điểm cầu của nó "
                       "bị ghi hai lần; hãy dừng phần này.",
                       "{who} is still running though the configuration has {parts} parts: "
                       "its rooms are recorded twice; stop it."),
}

EVENT_KINDS: dict[str, tuple[str, str]] = {
    "power_requested": ("yêu cầu bật/tắt", "power requested"),
    "shutdown_refused": ("từ chối tắt tại chỗ", "local switch-off refused"),
    "help_requested": ("xin hỗ trợ", "help requested"),
    "power_sequence_started": ("bắt đầu bật/tắt", "power sequence started"),
    "power_step": ("bước bật/tắt", "power step"),
    "power_sequence_finished": ("xong bật/tắt", "power sequence finished"),
    "power_sequence_cancelled": ("hủy bật/tắt", "power sequence cancelled"),
    "window_power_up": ("tự bật cho khung giờ", "powered up for a window"),
    "window_ready": ("sẵn sàng lúc bắt đầu", "ready at the start"),
    "lock_engaged": ("khóa", "lock engaged"),
    "lock_moved": ("dời khóa", "lock moved"),
    "lock_released": ("mở khóa", "lock released"),
    "lock_overridden": ("trung tâm ghi đè khóa", "lock overridden"),
    "window_started": ("bắt đầu khung giờ", "window started"),
    "window_completed": ("kết thúc khung giờ", "window completed"),
    "after_window_power_off": ("tắt sau khung giờ", "power off after the window"),
    "check_in": ("người trực xác nhận", "check-in"),
    "operator_check_requested": ("hỏi người trực", "operator check requested"),
    "operator_check_acknowledged": ("người trực trả lời", "operator check acknowledged"),
    "operator_check_unanswered": ("không ai trả lời", "operator check unanswered"),
    "schedule_applied": ("nhận lịch", "schedule applied"),
    "schedule_rejected": ("từ chối lịch", "schedule rejected"),
    "device_health": ("tình trạng thiết bị", "device health"),
    "device_identity_changed": ("thiết bị bị thay", "device swapped"),
    "self_help_power_cycle": ("tự khởi động lại thiết bị", "self-help power cycle"),
    "self_help_withheld": ("không tự khởi động lại", "self-help withheld"),
    "unscheduled_use": ("dùng ngoài giờ", "unscheduled use"),
    "unscheduled_use_ended": ("hết dùng ngoài giờ", "unscheduled use ended"),
    "agent_started": ("phần mềm khởi động", "agent started"),
    "agent_stopping": ("phần mềm dừng", "agent stopping"),
    "link_restored": ("kết nối lại", "link restored"),
    "relay_failed": ("rơ-le lỗi", "relay failed"),
    "events_dropped": ("mất sự kiện", "events dropped"),
}

COMMAND_NAMES: dict[str, tuple[str, str]] = {
    "power": ("bật/tắt nguồn", "power"),
    "start_window": ("bắt đầu khung giờ", "start window"),
    "complete_window": ("kết thúc khung giờ", "complete window"),
    "operator_check": ("hỏi người trực", "operator check"),
    "request_state": ("hỏi trạng thái", "request state"),
    "answer_help": ("trả lời hỗ trợ", "answer help"),
}


SHORT_DEVICES: dict[str, tuple[str, str]] = {
    "codec": ("codec", "codec"),
    "camera": ("cam", "cam"),
    "amplifier": ("âm ly", "amp"),
    "display": ("màn", "tv"),
    "microphone": ("micrô", "mic"),
}


def short_device(name: str, lang: Lang = "vi") -> str:
    """A device's name short enough for a room tile (its full name is in the tooltip)."""
    pair = SHORT_DEVICES.get(name)
    return name[:6] if pair is None else (pair[1] if lang == "en" else pair[0])


def word(key: str, lang: Lang = "vi", **fmt: object) -> str:
    """The dashboard's word for ``key`` in ``lang`` (then the report's; else the key)."""
    pair = WORDS.get(key) or SHARED.get(key) or EVENT_KINDS.get(key)
    if pair is None:
        return key.format(**fmt) if fmt else key
    text = pair[1] if lang == "en" else pair[0]
    return text.format(**fmt) if fmt else text


def event_kind(kind: str, lang: Lang = "vi") -> str:
    """An event kind for people (the wire name if unknown)."""
    pair = EVENT_KINDS.get(kind)
    return kind if pair is None else (pair[1] if lang == "en" else pair[0])


def command_name(name: str, lang: Lang = "vi") -> str:
    """A command name for people."""
    pair = COMMAND_NAMES.get(name)
    return name if pair is None else (pair[1] if lang == "en" else pair[0])


def recording_text(p: Problem, lang: Lang, when: Callable[[float], str]) -> str:
    """What is wrong with the recording (:class:`district.health.Problem`), one sentence in
    ``lang``; ``when`` writes a time for people (the site's zone)."""
    n = f"{p.rooms:,}".replace(",", "." if lang == "vi" else ",")
    if p.part > p.parts:
        who = word("rec_who_extra", lang, part=p.part, n=n)
        return word("rec_extra_part", lang, who=who, parts=p.parts)
    one = p.parts == 1
    who = (word("rec_who_one", lang) if one
           else word("rec_who_part", lang, part=p.part, parts=p.parts, n=n))
    stale = word("rec_stale_one" if one else "rec_stale_part", lang)
    at = when(p.since) if p.since is not None else "—"
    return word(f"rec_{p.kind}", lang, who=who, stale=stale, at=at, why=_why(p.detail, lang))


def _why(detail: str, lang: Lang) -> str:
    """Why a link is down, in ``lang`` (the broker's or paho's own words, in English, stay
    in ``/rooms.json``'s ``detail`` and the log)."""
    if detail.startswith("refused"):
        return " (" + word("rec_why_refused", lang) + ")"
    if detail.startswith("cannot reach"):
        return " (" + word("rec_why_unreachable", lang) + ")"
    return ""
