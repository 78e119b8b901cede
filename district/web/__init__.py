"""The district console's web dashboard (Starlette + Jinja2 + htmx with server-sent events).

:func:`~district.web.app.create_app` builds the app over a :class:`~district.service.Console`;
:class:`~district.web.server.WebServer` serves it inside ``diemcau-district run``.
"""
