"""What the room's operator reads: ``diemcau-agent status|request-off|selftest|…``, in one
language at a time, Vietnamese or English.

Every sentence is in :data:`WORDS` (key → Vietnamese, English; the LED card's too); nothing
here decides a language by ``if``. Names of the room, its devices, the centre and the support
contacts come from the site config (through the agent's reply), never from here. Times are the
site's time zone, in words relative to ``now`` (:func:`when`), which callers inject so tests
are exact.

Example::

    room = Room.from_reply(reply)                         # the agent's control reply
    print(status(reply["state"], room, "en", now))        # "Room: Xã Thử" …
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, Literal
from zoneinfo import ZoneInfo

from agent.core.led import DEFAULT_CENTRE, patterns

Lang = Literal["vi", "en"]
LANGS: tuple[Lang, ...] = ("vi", "en")
DEFAULT_LANG: Lang = "vi"
DEFAULT_ZONE = "Asia/Ho_Chi_Minh"

WORDS: dict[str, tuple[str, str]] = {
    # -- status --------------------------------------------------------------------------
    "room": ("Điểm cầu: {name}", "Room: {name}"),
    "power": ("Nguồn: {power}", "Power: {power}"),
    "power.on": ("bật", "on"),
    "power.off": ("tắt", "off"),
    "power.partial": ("bật một phần", "partly on"),
    "power.powering_on": ("đang bật lần lượt từng thiết bị", "switching on, one device at a time"),
    "power.powering_off": ("đang tắt lần lượt từng thiết bị",
                           "switching off, one device at a time"),
    "device": ("  • {label}: {power}, {health}", "  • {label}: {power}, {health}"),
    "device.relay": ("  • {label}: {power} (chỉ có rơ-le, không có cổng RS-232)",
                     "  • {label}: {power} (relay only, no RS-232 link)"),
    "device.why": ("  • {label}: {power}, {health} — {why}",
                   "  • {label}: {power}, {health} — {why}"),
    "health.ok": ("hoạt động tốt", "working"),
    "health.degraded": ("hoạt động chập chờn", "not working well"),
    "health.fault": ("LỖI", "FAULTY"),
    "health.unknown": ("chưa rõ tình trạng", "condition not known yet"),
    "health.in_call": ("đang trong cuộc gọi", "in a call"),
    "health.standby": ("đang chờ", "on standby"),
    "kind.test": ("kiểm tra kết nối", "connection test"),
    "kind.session": ("phiên họp", "meeting"),
    "doing.test": ("đang kiểm tra kết nối", "a connection test"),
    "doing.session": ("đang họp", "a meeting"),
    "locked": ("Đang khoá: {doing}{title} đến {until}. Không được tắt cho đến khi {centre} báo "
               "kết thúc.",
               "Locked: {doing}{title} until {until}. Do not switch off until {centre} says it "
               "is over."),
    "next": ("Lịch tiếp theo: {kind}{title}, {when}", "Next: {kind}{title}, {when}"),
    "check": ("{Centre} đang hỏi có người trực không: bấm nút một lần để trả lời.",
              "{Centre} is asking whether someone is there: press the button once to answer."),
    "help_waiting": ("Đã nhờ {centre} hỗ trợ lúc {when}; đang chờ trả lời.",
                     "Help asked of {centre} at {when}; waiting for an answer."),
    "link.up": ("Kết nối với {centre}: tốt, từ {when}", "Link to {centre}: up since {when}"),
    "link.down": ("Kết nối với {centre}: mất kết nối (phòng vẫn theo lịch đã lưu)",
                  "Link to {centre}: down (the room follows its saved schedule)"),
    "rejected": ("Lịch mới từ {centre} bị từ chối; phòng vẫn theo lịch cũ.",
                 "The new schedule from {centre} was refused; the room keeps the previous one."),
    "led": ("Đèn: {colour} — {meaning}", "Light: {colour} — {meaning}"),
    "support": ("Hỗ trợ:", "Support:"),
    "support.none": ("Hỗ trợ: chưa có số điện thoại nào trong cấu hình của phòng.",
                     "Support: the room's config has no phone number."),
    "contact": ("  • {name} ({role}): {phone}", "  • {name} ({role}): {phone}"),
    # -- times -----------------------------------------------------------------------------
    "today": ("hôm nay {hm}", "today {hm}"),
    "tomorrow": ("ngày mai {hm}", "tomorrow {hm}"),
    "yesterday": ("hôm qua {hm}", "yesterday {hm}"),
    "date": ("{weekday} {day:02d}/{month:02d} {hm}", "{weekday} {day} {month_name} {hm}"),
    "date.year": ("{weekday} {day:02d}/{month:02d}/{year} {hm}",
                  "{weekday} {day} {month_name} {year} {hm}"),
    # -- what a request did ----------------------------------------------------------------
    "refused": ("KHÔNG ĐƯỢC TẮT: phòng đang khoá vì {doing}{title} đến {until}. Chỉ tắt được khi "
                "{centre} báo kết thúc.",
                "Not switched off: the room is locked for {doing}{title} until {until}. It can "
                "be switched off once {centre} says it is over."),
    "checked_in": ("Đã điểm danh cho {kind}{title}.", "Checked in for the {kind}{title}."),
    "acknowledged": ("Đã trả lời {centre}: có người trực (sau {s} giây).",
                     "Answered {centre}: someone is here (after {s} s)."),
    "switching_on": ("Đang bật lần lượt: {devices}.", "Switching on in order: {devices}."),
    "switching_off": ("Đang tắt lần lượt: {devices}.", "Switching off in order: {devices}."),
    "already_on": ("Phòng đã bật sẵn.", "The room is already on."),
    "already_off": ("Phòng đã tắt sẵn.", "The room is already off."),
    "help_sent": ("Đã báo {centre} cần hỗ trợ; xin chờ được liên lạc lại.",
                  "{Centre} has been asked for help; please wait to be contacted."),
    "nothing": ("Không có gì thay đổi: không có lịch nào đang diễn ra, không có câu hỏi nào "
                "đang chờ.", "Nothing to do: nothing is on and no question is waiting."),
    "done": ("Xong.", "Done."),
    # -- self-test -------------------------------------------------------------------------
    "selftest": ("Tự kiểm tra: tắt rồi bật lại từng thiết bị theo thứ tự.",
                 "Self-test: each device switched off and on again, in order."),
    "st.serial": ("  • {label}: tắt đã xác nhận, bật đã xác nhận (qua cổng RS-232).",
                  "  • {label}: off confirmed, on confirmed (over RS-232)."),
    "st.serial_was_off": ("  • {label}: đã tắt sẵn; bật đã xác nhận (qua cổng RS-232).",
                          "  • {label}: was already off; on confirmed (over RS-232)."),
    "st.relay": ("  • {label}: đã tắt, đã bật — chỉ xác nhận bằng rơ-le (thiết bị không có cổng "
                 "RS-232).",
                 "  • {label}: switched off, switched on — confirmed by its relay only (no "
                 "RS-232 link)."),
    "st.failed": ("  • {label}: LỖI — {what}.", "  • {label}: FAILED — {what}."),
    "st.off.no_answer": ("không xác nhận được khi tắt (không trả lời qua RS-232)",
                         "switch-off not confirmed (no answer over RS-232)"),
    "st.on.no_answer": ("không trả lời qua RS-232 sau khi bật lại",
                        "no answer over RS-232 after switching back on"),
    "st.off.relay_failed": ("rơ-le không ngắt điện (chân rơ-le đọc lại vẫn đóng)",
                            "its relay did not cut the power (the pin still reads closed)"),
    "st.off.not_done": ("chưa tắt xong thì bị dừng", "stopped before it was switched off"),
    "st.on.not_done": ("chưa bật lại xong thì bị dừng", "stopped before it was back on"),
    "st.relay_open": ("rơ-le không đóng lại", "its relay did not close again"),
    "st.untested": ("  • {label}: chưa kiểm tra.", "  • {label}: not tested."),
    "st.all_good": ("Kết quả: cả {n} thiết bị đều tốt.", "Result: all {n} devices are fine."),
    "st.some_bad": ("Kết quả: {bad}/{n} thiết bị không đạt: {names}. Hãy gọi hỗ trợ.",
                    "Result: {bad} of {n} devices failed: {names}. Call support."),
    "st.stopped": ("Tự kiểm tra bị dừng giữa chừng: {why}.",
                   "The self-test was stopped early: {why}."),
    "st.why.lock": ("{doing} bắt đầu", "{doing} began"),
    "st.why.local": ("có yêu cầu bật hoặc tắt khác", "another request to switch on or off"),
    "st.why.centre": ("{centre} bật hoặc tắt phòng", "{centre} switched the room"),
    "st.why.restart": ("trợ lý điểm cầu khởi động lại", "the room agent restarted"),
    "st.why.other": ("phòng tự bật hoặc tắt", "the room switched itself"),
    "st.refused.locked": ("Không tự kiểm tra được: phòng đang khoá vì {doing}{title} đến "
                          "{until}.",
                          "Self-test refused: the room is locked for {doing}{title} until "
                          "{until}."),
    "st.refused.busy": ("Chưa tự kiểm tra được: phòng đang bật hoặc tắt thiết bị; thử lại sau "
                        "ít phút.",
                        "Self-test refused for now: the room is switching devices on or off; "
                        "try again in a few minutes."),
    "st.refused.running": ("Đang có một lần tự kiểm tra; hãy chờ nó xong.",
                           "A self-test is already running; wait for it to finish."),
    # -- the printable LED card (agent.ledcard; the room's name is "room") ------------------
    "card.title": ("Đèn báo của điểm cầu", "The room's status light"),
    "card.intro": ("Đèn cạnh nút bấm cho biết phòng đang thế nào. Tìm kiểu đèn giống nhất trong "
                   "bảng dưới đây; dải bên cạnh vẽ nhịp sáng/tắt trong {s} giây.",
                   "The light next to the button shows how the room is. Find the pattern that "
                   "looks the same in the table below; the strip beside it draws {s} seconds of "
                   "its on/off rhythm."),
    "card.light": ("Đèn", "Light"),
    "card.meaning": ("Ý nghĩa — việc cần làm", "Meaning — what to do"),
    "card.button": ("Nút bấm: bấm một lần để điểm danh hoặc trả lời {centre}; bấm hai lần liền "
                    "để nhờ hỗ trợ; giữ để bật hoặc tắt phòng (không tắt được khi đang khoá).",
                    "Button: press once to check in or answer {centre}; press twice quickly to "
                    "ask for help; hold to switch the room on or off (not while it is locked)."),
    "card.support": ("Hỗ trợ", "Support"),
    "card.no_support": ("Chưa có số điện thoại hỗ trợ trong cấu hình của phòng.",
                        "The room's config has no support phone number."),
    # -- errors ----------------------------------------------------------------------------
    "unreachable": ("Không liên lạc được với trợ lý điểm cầu ({path}). Trợ lý có đang chạy "
                    "không? Xem: sudo systemctl status diemcau-agent",
                    "Cannot reach the room agent ({path}). Is it running? See: sudo systemctl "
                    "status diemcau-agent"),
    "err.busy": ("Trợ lý đang bận; thử lại sau vài giây.",
                 "The agent is busy; try again in a few seconds."),
    "err.no_answer": ("Trợ lý không trả lời kịp; hãy thử lại, nếu vẫn vậy thì gọi hỗ trợ.",
                      "The agent did not answer in time; try again, and call support if it "
                      "happens again."),
    "err.simulate_only": ("Lệnh này chỉ dùng được trong phòng mô phỏng (--simulate).",
                          "This works only in a simulated room (--simulate)."),
    "err.no_button": ("Phòng này không có nút bấm.", "This room has no button."),
    "err.button_timeout": ("Phòng chưa nhận nút bấm sau 5 giây.",
                           "The room did not take the button press within 5 s."),
    "err.other": ("Trợ lý báo lỗi. Chạy lại lệnh với --json để xem chi tiết, hoặc gọi hỗ trợ.",
                  "The agent reported an error. Run the command again with --json for details, "
                  "or call support."),
}
"""Every operator sentence, Vietnamese then English."""

WEEKDAYS: tuple[tuple[str, str], ...] = (
    ("thứ Hai", "Mon"), ("thứ Ba", "Tue"), ("thứ Tư", "Wed"), ("thứ Năm", "Thu"),
    ("thứ Sáu", "Fri"), ("thứ Bảy", "Sat"), ("Chủ nhật", "Sun"))
MONTHS_EN = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")


def t(key: str, lang: Lang, **kw: Any) -> str:
    """The sentence ``key`` in ``lang``, filled in with ``kw``."""
    return WORDS[key][LANGS.index(lang)].format(**kw)


def _cap(text: str) -> str:
    return text[:1].upper() + text[1:]


def one_language(text: str, lang: Lang) -> str:
    """A device's reason as its driver gives it (``"Vietnamese / English"``) in ``lang``."""
    vi, sep, en = text.partition(" / ")
    return (en or vi) if lang == "en" and sep else vi


# --------------------------------------------------------------------------- times


def parse_time(ts: str | float | datetime) -> datetime:
    """An ISO 8601 time (``…Z`` or with an offset), POSIX seconds or an aware datetime."""
    if isinstance(ts, datetime):
        return ts
    if isinstance(ts, int | float):
        return datetime.fromtimestamp(ts, UTC)
    return datetime.fromisoformat(ts)


def when(ts: str | float | datetime, now: datetime, zone: str, lang: Lang,
         bare_today: bool = False) -> str:
    """``ts`` in the site's ``zone`` in words, from ``now``: "hôm nay 14:00", "ngày mai
    08:30", "thứ Năm 04/12 08:00" / "today 14:00", "tomorrow 08:30", "Thu 4 Dec 08:00" (with
    the year when it is not ``now``'s). ``bare_today``: today's time alone ("đến 15:00")."""
    z = ZoneInfo(zone)
    local = parse_time(ts).astimezone(z)
    today = now.astimezone(z).date()
    hm = local.strftime("%H:%M")
    days = (local.date() - today).days
    if days == 0:
        return hm if bare_today else t("today", lang, hm=hm)
    if days in (1, -1):
        return t("tomorrow" if days == 1 else "yesterday", lang, hm=hm)
    key = "date" if local.year == today.year else "date.year"
    return t(key, lang, weekday=WEEKDAYS[local.weekday()][LANGS.index(lang)], day=local.day,
             month=local.month, month_name=MONTHS_EN[local.month - 1], year=local.year, hm=hm)


# --------------------------------------------------------------------------- the room


@dataclass(frozen=True)
class Room:
    """What the agent's reply says about the room, for the words: its name, the centre's
    name (Vietnamese, English), its time zone, device labels, support contacts."""

    name: str = ""
    centre: tuple[str, str] = DEFAULT_CENTRE
    timezone: str = DEFAULT_ZONE
    labels: Mapping[str, str] = field(default_factory=dict)
    support: Sequence[Mapping[str, str]] = ()
    relay_only: frozenset[str] = frozenset()
    """Devices without a driver (no serial link): their health is never known."""

    @classmethod
    def from_reply(cls, reply: Mapping[str, Any]) -> Room:
        """From a control reply (``agent.runtime.Agent._local``): its room fields, else what
        its ``info`` says, else generic names."""
        info = reply.get("info") or {}
        c = reply.get("centre") or {}
        devices = info.get("devices") or {}
        labels = {n: d.get("label") or n for n, d in devices.items()}
        labels.update(reply.get("labels") or {})
        support = reply.get("support")
        return cls(name=reply.get("name") or info.get("name") or "",
                   centre=(c.get("vi") or DEFAULT_CENTRE[0], c.get("en") or DEFAULT_CENTRE[1]),
                   timezone=reply.get("timezone") or info.get("timezone") or DEFAULT_ZONE,
                   labels=labels,
                   support=tuple(support if support is not None else info.get("support") or ()),
                   relay_only=frozenset(n for n, d in devices.items() if not d.get("driver")))

    def centre_in(self, lang: Lang) -> str:
        return self.centre[LANGS.index(lang)]

    def label(self, device: str) -> str:
        return self.labels.get(device) or device


def _title(title: str | None) -> str:
    return f" «{title}»" if title else ""


def _window_words(w: Mapping[str, Any] | None, kind: str | None, lang: Lang) -> dict[str, str]:
    kind = kind or (w or {}).get("kind") or "test"
    if kind not in ("test", "session"):
        kind = "test"
    return {"kind": t(f"kind.{kind}", lang), "doing": t(f"doing.{kind}", lang),
            "title": _title((w or {}).get("title"))}


def _until(state: Mapping[str, Any] | None, room: Room, lang: Lang, now: datetime) -> str:
    """When the window locking the room ends (its planned end), in words."""
    st = state or {}
    end = (st.get("window") or {}).get("end") or (st.get("lock") or {}).get("end")
    if not end:
        return "?"
    return when(end, now, room.timezone, lang, bare_today=True)


def role_of(contact: Mapping[str, Any], lang: Lang) -> str:
    """A contact's role in ``lang``: ``role`` is Vietnamese, ``role_en`` English (when the
    site file gives one)."""
    if lang == "en" and contact.get("role_en"):
        return str(contact["role_en"])
    return str(contact.get("role", ""))


def contacts(room: Room, lang: Lang) -> list[str]:
    """The support lines: a heading and one line per contact (or a line saying none)."""
    if not room.support:
        return [t("support.none", lang)]
    return [t("support", lang)] + [t("contact", lang, name=c.get("name", ""),
                                     role=role_of(c, lang), phone=c.get("phone", ""))
                                   for c in room.support]


def _health(d: Mapping[str, Any], lang: Lang) -> tuple[str, str]:
    status = d.get("health") or "unknown"
    if status == "ok" and d.get("in_call"):
        return t("health.in_call", lang), ""
    if status == "ok" and d.get("reported_power") == "standby":
        return t("health.standby", lang), ""
    words = t(f"health.{status}", lang) if f"health.{status}" in WORDS else status
    why = one_language(d.get("reason") or "", lang) if status in ("degraded", "fault") else ""
    return words, why


def status(state: Mapping[str, Any], room: Room, lang: Lang, now: datetime) -> str:
    """The operator's status text: ``state`` is the room's state message (contract 2.0)."""
    centre = room.centre_in(lang)
    lines = [t("room", lang, name=room.name or state.get("site", ""))]
    p = state.get("power", "off")
    lines.append(t("power", lang, power=t(f"power.{p}", lang) if f"power.{p}" in WORDS else p))
    for dev, d in (state.get("devices") or {}).items():
        health, why = _health(d, lang)
        power = t("power.on" if d.get("power") == "on" else "power.off", lang)
        if dev in room.relay_only and d.get("health") in (None, "unknown"):
            lines.append(t("device.relay", lang, label=room.label(dev), power=power))
            continue
        lines.append(t("device.why" if why else "device", lang, label=room.label(dev),
                       power=power, health=health, why=why))
    lock = state.get("lock") or {}
    if lock.get("locked"):
        words = _window_words(state.get("window"), lock.get("kind"), lang)
        lines.append(t("locked", lang, until=_until(state, room, lang, now), centre=centre,
                       **words))
    nxt = state.get("next_window")
    if nxt:
        words = _window_words(nxt, None, lang)
        lines.append(t("next", lang, when=when(nxt["start"], now, room.timezone, lang),
                       kind=words["kind"], title=words["title"]))
    op = state.get("operator") or {}
    if op.get("check"):
        lines.append(t("check", lang, Centre=_cap(centre)))
    if op.get("help_requested"):
        lines.append(t("help_waiting", lang, centre=centre,
                       when=when(op["help_requested"], now, room.timezone, lang)))
    since = (state.get("link") or {}).get("since")
    lines.append(t("link.up", lang, centre=centre, when=when(since, now, room.timezone, lang))
                 if since else t("link.down", lang, centre=centre))
    if (state.get("schedule") or {}).get("rejected"):
        lines.append(t("rejected", lang, centre=centre))
    led = patterns(room.centre).get(state.get("led", ""))
    if led:
        colour, meaning = ((led.colour_vi, led.vi) if lang == "vi" else (led.colour_en, led.en))
        lines.append(t("led", lang, colour=colour, meaning=meaning))
    lines.extend(contacts(room, lang))
    return "\n".join(lines)


def outcome(did: Sequence[Mapping[str, Any]], room: Room, lang: Lang, now: datetime,
            state: Mapping[str, Any] | None = None) -> str:
    """What the room did with a local request (the events its decision made), one line each;
    ``state`` (the state after it) says until when a lock lasts."""
    centre = room.centre_in(lang)
    lines: list[str] = []
    sequence = any(e["kind"] == "power_sequence_started" for e in did)
    for e in did:
        k, d = e["kind"], e.get("data", {})
        words = _window_words({"title": d.get("title")}, d.get("kind"), lang)
        if k == "shutdown_refused":
            lines.append(t("refused", lang, until=_until(state, room, lang, now),
                           centre=centre, **words))
        elif k == "check_in":
            lines.append(t("checked_in", lang, **words))
        elif k == "operator_check_acknowledged":
            lines.append(t("acknowledged", lang, centre=centre, s=d.get("latency_s")))
        elif k == "power_sequence_started":
            names = ", ".join(room.label(n) for n in d.get("devices", []))
            lines.append(t("switching_on" if d.get("on") else "switching_off", lang,
                           devices=names))
        elif k == "power_requested" and not sequence:
            lines.append(t("already_on" if d.get("on") else "already_off", lang))
        elif k == "help_requested":
            lines.append(t("help_sent", lang, centre=centre, Centre=_cap(centre)))
    if not lines:
        lines.append(t("nothing", lang))
    return "\n".join(lines)


def selftest_refused(refused: Mapping[str, Any], state: Mapping[str, Any] | None, room: Room,
                     lang: Lang, now: datetime) -> str:
    """Why a self-test was refused (a ``selftest_refused`` event)."""
    d = refused.get("data", {})
    reason = d.get("reason", "busy")
    words = _window_words({"title": d.get("title")}, d.get("kind"), lang)
    return t(f"st.refused.{reason}", lang, until=_until(state, room, lang, now), **words)


def _stopped_why(by: str, room: Room, lang: Lang, state: Mapping[str, Any] | None) -> str:
    head = by.split(":", 1)[0]
    if head in ("lock", "window"):
        w = (state or {}).get("window")
        return t("st.why.lock", lang, doing=_cap(_window_words(w, None, lang)["kind"]))
    if head == "local":
        return t("st.why.local", lang)
    if head in ("district", "override"):
        return t("st.why.centre", lang, centre=room.centre_in(lang))
    if head == "restart":
        return t("st.why.restart", lang)
    return t("st.why.other", lang)


def selftest(result: Mapping[str, Any], room: Room, lang: Lang,
             state: Mapping[str, Any] | None = None) -> str:
    """A self-test's report (``{"devices": [selftest_device data + "serial"], "finished":
    selftest_finished data}``): per device, how it was confirmed or what failed."""
    lines = [t("selftest", lang)]
    done = {d["device"] for d in result.get("devices", [])}
    for d in result.get("devices", []):
        label = room.label(d["device"])
        if d.get("ok"):
            if d.get("off") == "relay_only" or d.get("on") == "relay_only":
                lines.append(t("st.relay", lang, label=label))
            elif d.get("off") == "already_off":
                lines.append(t("st.serial_was_off", lang, label=label))
            else:
                lines.append(t("st.serial", lang, label=label))
            continue
        what = [t(f"st.{phase}.{d.get(phase)}", lang) for phase in ("off", "on")
                if f"st.{phase}.{d.get(phase)}" in WORDS]
        if not d.get("relay") and not what:
            what.append(t("st.relay_open", lang))
        lines.append(t("st.failed", lang, label=label, what="; ".join(what)))
    finished = result.get("finished", {})
    failed = list(finished.get("failed", []))
    lines.extend(t("st.untested", lang, label=room.label(n)) for n in failed if n not in done)
    if finished.get("interrupted_by"):
        lines.append(t("st.stopped", lang,
                       why=_stopped_why(finished["interrupted_by"], room, lang, state)))
    n = len(done | set(failed))
    if not failed:
        lines.append(t("st.all_good", lang, n=n))
    else:
        lines.append(t("st.some_bad", lang, bad=len(failed), n=n,
                       names=", ".join(room.label(f) for f in failed)))
        lines.extend(contacts(room, lang))
    return "\n".join(lines)


ERRORS = {"busy": "err.busy", "no_answer": "err.no_answer", "simulate_only": "err.simulate_only",
          "no_button": "err.no_button", "button_timeout": "err.button_timeout"}
"""An error reply's ``code`` → its sentence (any other code: ``err.other``)."""


def error(reply: Mapping[str, Any], lang: Lang) -> str:
    """An error the agent replied with, in ``lang`` (its English detail is for ``--json``)."""
    return t(ERRORS.get(str(reply.get("code")), "err.other"), lang)
