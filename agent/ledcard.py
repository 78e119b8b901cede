"""The printable LED card: what each light pattern means and what to do, Vietnamese page then
English page, with the room's support contacts (``diemcau-agent led-card > card.html``).

Generated from the LED table (:func:`agent.core.led.patterns`), so it cannot disagree with
what the room shows. One HTML file with no external assets: print CSS for A5 (or A4), a page
break between the languages, and a swatch per pattern drawn with CSS: its colour, and for a
blinking pattern a strip of its on/off rhythm over a few seconds (printed paper does not
blink), animated on screen. Its words are the operator's (:data:`agent.operator_text.WORDS`,
``card.*``).
"""

from __future__ import annotations

from html import escape

from agent.config import SiteConfig
from agent.core.led import DEFAULT_CENTRE, LedPattern, patterns
from agent.operator_text import LANGS, Lang, role_of, t

STRIP_S = 6.0
"""Seconds of a blinking pattern's rhythm drawn on its strip."""
DARK = "#444"
"""The LED off, on a strip."""

CSS = """
@page { size: A5 portrait; margin: 7mm; }
* { box-sizing: border-box; }
body { font-family: "Noto Sans", "DejaVu Sans", Arial, sans-serif; font-size: 9.5pt;
       color: #111; margin: 0; }
.page { padding: 0; page-break-after: always; break-after: page; }
.page:last-child { page-break-after: auto; break-after: auto; }
h1 { font-size: 14pt; margin: 0 0 1mm; }
h2 { font-size: 11pt; margin: 2mm 0 1mm; }
p { margin: 1mm 0 2mm; }
ul { margin: 0; padding-left: 5mm; }
table { border-collapse: collapse; width: 100%; }
th, td { border: 0.3mm solid #999; padding: 2mm; vertical-align: top; text-align: left; }
td.light { width: 40mm; }
th, td { font-size: 9pt; padding: 1mm 1.5mm; }
.swatch { display: inline-block; width: 6mm; height: 6mm; border-radius: 50%;
          border: 0.4mm solid #333; vertical-align: middle;
          -webkit-print-color-adjust: exact; print-color-adjust: exact; }
.strip { display: inline-block; width: 22mm; height: 3mm; margin-left: 2mm;
         vertical-align: middle;
         border: 0.2mm solid #333;
         -webkit-print-color-adjust: exact; print-color-adjust: exact; }
.colour { display: block; font-size: 8pt; margin-top: 0.5mm; }
.contacts li { margin: 1mm 0; }
@media screen {
  .page { max-width: 148mm; margin: 8mm auto; padding: 6mm; border: 1px solid #ccc; }
  .swatch.blink { animation-iteration-count: infinite;
                  animation-timing-function: steps(1, end); }
}
"""


def _rgb(p: LedPattern) -> str:
    r, g, b = (round(c * 255) for c in p.colour)
    return f"rgb({r}, {g}, {b})"


def swatch(p: LedPattern) -> str:
    """The pattern drawn: its colour, and for a blinking one the rhythm strip (on screen it
    also blinks at its timing)."""
    colour = _rgb(p)
    if p.steady:
        return (f'<span class="swatch steady" data-pattern="{p.name}" '
                f'style="background: {colour};"></span>')
    period = p.on_s + p.off_s
    on_pct = round(100 * p.on_s / period, 2)
    # One period of the strip as a share of its width: the rhythm over STRIP_S seconds.
    size = round(100 * period / STRIP_S, 3)
    lit = f"{size * on_pct / 100:.3f}%"
    # Lit in the pattern's colour, dark (the LED off) in between.
    strip = (f'<span class="strip" style="background: repeating-linear-gradient(to right, '
             f'{colour} 0, {colour} {lit}, {DARK} {lit}, {DARK} {size:.3f}%);"></span>')
    return (f'<span class="swatch blink" data-pattern="{p.name}" '
            f'style="background: {colour}; animation-duration: {period:g}s; '
            f'animation-name: blink-{p.name};"></span>{strip}')


def keyframes(p: LedPattern) -> str:
    """A blinking pattern's on-screen blink: dark from ``on_s`` into each period."""
    on_pct = round(100 * p.on_s / (p.on_s + p.off_s), 2)
    return (f"@keyframes blink-{p.name} {{ 0% {{ opacity: 1; }} "
            f"{on_pct}% {{ opacity: 0.12; }} }}")


def _page(lang: Lang, cfg: SiteConfig | None) -> str:
    centre = (cfg.site.centre.vi, cfg.site.centre.en) if cfg else DEFAULT_CENTRE
    out = [f'<section class="page" lang="{lang}">',
           f"<h1>{escape(t('card.title', lang))}</h1>"]
    if cfg is not None:
        out.append(f"<p><strong>{escape(t('room', lang, name=cfg.site.name))}</strong></p>")
    out.append(f"<p>{escape(t('card.intro', lang, s=f'{STRIP_S:g}'))}</p>")
    out.append(f"<table><thead><tr><th>{escape(t('card.light', lang))}</th>"
               f"<th>{escape(t('card.meaning', lang))}</th></tr></thead><tbody>")
    for p in patterns(centre).values():
        colour, meaning = (p.colour_vi, p.vi) if lang == "vi" else (p.colour_en, p.en)
        out.append(f'<tr data-pattern="{p.name}"><td class="light">{swatch(p)}'
                   f'<span class="colour">{escape(colour)}</span></td>'
                   f"<td>{escape(meaning)}</td></tr>")
    out.append("</tbody></table>")
    out.append(f"<p>{escape(t('card.button', lang, centre=centre[LANGS.index(lang)]))}</p>")
    out.append(f"<h2>{escape(t('card.support', lang))}</h2>")
    if cfg is not None and cfg.support:
        out.append('<ul class="contacts">')
        out.extend(f"<li><strong>{escape(c.name)}</strong> "
                   f"({escape(role_of(c.model_dump(), lang))}): "
                   f"<strong>{escape(c.phone)}</strong></li>" for c in cfg.support)
        out.append("</ul>")
    else:
        out.append(f"<p>{escape(t('card.no_support', lang))}</p>")
    out.append("</section>")
    return "\n".join(out)


def render(cfg: SiteConfig | None = None) -> str:
    """The whole card as one HTML document: the Vietnamese page, then the English one.
    ``cfg`` gives the room's name, the centre's name and the support contacts (without it:
    generic names and no contacts)."""
    title = f"{t('card.title', 'vi')} / {t('card.title', 'en')}"
    pages = "\n".join(_page(lang, cfg) for lang in LANGS)
    blinks = "\n".join(keyframes(p) for p in patterns().values() if not p.steady)
    return ("<!DOCTYPE html>\n<html lang=\"vi\">\n<head>\n<meta charset=\"utf-8\">\n"
            f"<title>{escape(title)}</title>\n<style>{CSS}@media screen {{\n{blinks}\n}}\n"
            "</style>\n</head>\n<body>\n"
            f"{pages}\n</body>\n</html>\n")
