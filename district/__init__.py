"""The district console: roster, recorder, windows, alerts and compliance reports.

The web dashboard (``district/web/``) and the ``diemcau-district`` CLI both work through
:class:`district.service.Console`; the recorder (:mod:`district.recorder`) fills the store.
"""
