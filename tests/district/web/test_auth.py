"""Who may see and do what: sessions, roles, CSRF tokens, the log-in rate limit, cookies, and
passwords kept out of the database and the logs."""

from __future__ import annotations

import logging
import re
from pathlib import Path

import pytest

from district.web.auth import SESSION_COOKIE, RateLimiter, Sessions, load_secret
from tests.district.web.helpers import OPERATOR, VIEWER, hx, login, login_form, web


def test_no_session_redirects_pages_and_refuses_json_live_and_posts(tmp_path: Path) -> None:
    with web(tmp_path) as wb, wb.client() as c:
        r = c.get("/windows?x=1")
        assert r.status_code == 303 and r.headers["location"] == "/login?next=%2Fwindows%3Fx%3D1"
        for url in ("/rooms.json", "/rooms/xa-a.json", "/windows.json", "/alerts.json",
                    "/live?view=rooms"):
            r = c.get(url)
            assert r.status_code == 401, url
            assert r.json() == {"error": "Cần đăng nhập."}
        r = c.post("/rooms/xa-a/power", data={"on": "1"})
        assert r.status_code == 401
        assert wb.console.commands() == []


def test_a_viewer_looks_but_cannot_command(tmp_path: Path) -> None:
    with web(tmp_path) as wb, wb.client() as c:
        token = login(c, VIEWER)
        for url in ("/", "/rooms/xa-a", "/windows", "/alerts", "/rooms.json"):
            assert c.get(url).status_code == 200, url
        page = c.get("/rooms/xa-a").text
        assert "btn-power-off" not in page and "window-form" not in c.get("/windows").text
        for url, data in (("/rooms/xa-a/power", {"on": "0"}), ("/rooms/xa-a/check", {}),
                          ("/rooms/xa-a/help", {}),
                          ("/windows", {"kind": "test", "title": "x", "action": "now",
                                        "duration_min": "30", "rooms_mode": "all"})):
            r = c.post(url, data=data, headers=hx(token))
            assert r.status_code == 403, url
            assert "chỉ xem" in r.text
        r = c.post("/rooms/xa-a/power?lang=en", data={"on": "0"}, headers=hx(token))
        assert r.status_code == 403 and "A viewer account may look but not act." in r.text
        assert wb.console.commands() == [] and wb.console.windows() == []


def test_a_post_without_the_right_csrf_token_is_refused(tmp_path: Path) -> None:
    with web(tmp_path) as wb, wb.client() as c:
        token = login(c, OPERATOR)
        for headers, data in (({"HX-Request": "true"}, {"on": "1"}),
                              ({"HX-Request": "true", "X-CSRF-Token": "0" * 32}, {"on": "1"}),
                              ({}, {"on": "1", "csrf": token[:-1] + "x"})):
            r = c.post("/rooms/xa-a/power", data=data, headers=headers)
            assert r.status_code == 403
            assert "CSRF" in r.text and "tải lại trang" in r.text
        assert wb.console.commands() == []
        r = c.post("/rooms/xa-a/power", data={"on": "1", "reason": "x" * 300_000},
                   headers=hx(token))
        assert r.status_code == 413, "a huge body is refused before it is read"
        r = c.post("/rooms/xa-a/power", data={"on": "1"}, headers=hx(token))
        assert r.status_code == 200, r.text
        assert [x.name for x in wb.console.commands()] == ["power"]
        # the form field works too (a browser without scripts)
        r = c.post("/rooms/xa-a/check", data={"csrf": token}, headers={"referer": "/rooms/xa-a"})
        assert r.status_code == 303 and r.headers["location"] == "/rooms/xa-a"


def test_the_login_form_needs_its_token(tmp_path: Path) -> None:
    with web(tmp_path) as wb, wb.client() as c:
        r = c.post("/login", data={"user": OPERATOR[0], "password": OPERATOR[1], "csrf": "x"})
        assert r.status_code == 403
        assert SESSION_COOKIE not in c.cookies
        assert wb.console.users()  # untouched


def test_login_attempts_are_limited_per_user_and_per_address(tmp_path: Path) -> None:
    with web(tmp_path) as wb, wb.client() as c:
        token = login_form(c)
        for _ in range(5):
            r = c.post("/login", data={"user": "hung", "password": "wrong", "csrf": token})
            assert r.status_code == 401
            assert "Sai tên đăng nhập hoặc mật khẩu." in r.text
        r = c.post("/login", data={"user": "hung", "password": OPERATOR[1], "csrf": token})
        assert r.status_code == 429
        assert r.headers["retry-after"] == "60"
        assert "thử lại sau 60 giây" in r.text
        assert SESSION_COOKIE not in c.cookies
        # the same address is limited for another name too
        r = c.post("/login", data={"user": "lan", "password": VIEWER[1], "csrf": token})
        assert r.status_code == 429
        wb.mono.now += 30
        r = c.post("/login?lang=en", data={"user": "lan", "password": "x", "csrf": token})
        assert r.status_code == 429 and "Try again in 30 seconds." in r.text
        wb.mono.now += 31
        r = c.post("/login", data={"user": "hung", "password": OPERATOR[1], "csrf": token})
        assert r.status_code == 303


def test_the_user_limit_holds_across_addresses() -> None:
    clock = [0.0]
    limiter = RateLimiter(5, 60.0, clock=lambda: clock[0])
    for i in range(5):
        limiter.fail(["user:hung", f"addr:10.0.0.{i}"])
    assert limiter.wait(["user:hung", "addr:10.0.0.99"]) == 60.0
    assert limiter.wait(["user:lan", "addr:10.0.0.99"]) == 0.0
    clock[0] = 59.5
    assert limiter.wait(["user:hung"]) == pytest.approx(0.5)
    clock[0] = 60.0
    assert limiter.wait(["user:hung"]) == 0.0


def test_session_cookie_flags_and_secure_over_https(tmp_path: Path) -> None:
    with web(tmp_path) as wb:
        with wb.client() as c:
            token = login_form(c)
            r = c.post("/login", data={"user": OPERATOR[0], "password": OPERATOR[1],
                                       "csrf": token})
            cookie = r.headers["set-cookie"]
            assert cookie.startswith(f"{SESSION_COOKIE}=")
            assert "HttpOnly" in cookie and "SameSite=lax" in cookie and "Secure" not in cookie
        from starlette.testclient import TestClient

        with TestClient(wb.app, base_url="https://testserver", follow_redirects=False) as c:
            token = login_form(c)
            r = c.post("/login", data={"user": OPERATOR[0], "password": OPERATOR[1],
                                       "csrf": token})
            cookies = r.headers.get_list("set-cookie")
            session = next(x for x in cookies if x.startswith(SESSION_COOKIE))
            assert "Secure" in session and "HttpOnly" in session


def test_forged_expired_and_logged_out_sessions_are_refused(tmp_path: Path) -> None:
    with web(tmp_path) as wb, wb.client() as c, wb.client() as other:
        token = login(c, OPERATOR)
        good = c.cookies[SESSION_COOKIE]

        def status(cookie: str) -> int:
            return other.get("/rooms.json", headers={"Cookie": f"{SESSION_COOKIE}={cookie}"}
                             ).status_code

        assert status(good) == 200
        payload, _, sig = good.rpartition(".")
        assert status(f"{payload}.{sig[::-1]}") == 401, "a forged signature was taken"
        assert status(Sessions(b"another secret" * 4).issue("hung")[0]) == 401
        assert status("garbage") == 401
        wb.clock.now += 12 * 3600 + 1
        assert status(good) == 401, "a session lasts 12 hours"
        wb.clock.now -= 12 * 3600 + 1
        r = c.post("/logout", data={"csrf": token})
        assert r.status_code == 303 and r.headers["location"] == "/login"
        assert status(good) == 401, "a logged-out cookie still worked"


def test_a_user_made_viewer_loses_commands_at_once(tmp_path: Path) -> None:
    with web(tmp_path) as wb, wb.client() as c:
        token = login(c, OPERATOR)
        wb.console.set_password(OPERATOR[0], OPERATOR[1], role="viewer")
        r = c.post("/rooms/xa-a/check", headers=hx(token))
        assert r.status_code == 403
        wb.console.remove_user(OPERATOR[0])
        assert c.get("/rooms.json").status_code == 401


def test_passwords_are_never_in_the_database_or_the_logs(tmp_path: Path,
                                                         caplog: pytest.LogCaptureFixture
                                                         ) -> None:
    caplog.set_level(logging.DEBUG)
    with web(tmp_path) as wb, wb.client() as c, wb.client() as c2:
        login(c, OPERATOR)
        token = login_form(c2)
        c2.post("/login", data={"user": VIEWER[0], "password": "wrong-" + VIEWER[1],
                                "csrf": token})
        wb.store.close()
    for f in tmp_path.iterdir():
        if f.name.startswith("console.db"):
            data = f.read_bytes()
            for secret in (OPERATOR[1], VIEWER[1], "wrong-" + VIEWER[1]):
                assert secret.encode() not in data, f"{secret} in {f.name}"
    text = caplog.text + "".join(repr(r.__dict__) for r in caplog.records)
    for secret in (OPERATOR[1], VIEWER[1]):
        assert secret not in text


def test_the_secret_file_is_made_private_once(tmp_path: Path) -> None:
    a = load_secret(tmp_path / "state")
    assert (tmp_path / "state" / "web-secret").stat().st_mode & 0o777 == 0o600
    assert load_secret(tmp_path / "state") == a and len(a) == 64
    assert a.decode() not in repr(Sessions(a))
    s = Sessions(a).issue("hung")[1]
    assert s.nonce not in repr(s)
    assert re.fullmatch(r"Session\(user='hung', issued=[0-9.e+]+\)", repr(s))
