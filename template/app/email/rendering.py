"""Message bodies rendered from the Jinja2 templates in `templates/`.

Each message has `<name>.html` and `<name>.txt`. HTML templates autoescape every
value (a user's name cannot inject markup); plain-text ones are not escaped.
"""

from dataclasses import dataclass

import jinja2

_environment = jinja2.Environment(
    loader=jinja2.PackageLoader("app.email", "templates"),
    autoescape=jinja2.select_autoescape(enabled_extensions=("html",), default=False),
    # A missing value is a bug in the caller, not an empty string in someone's inbox.
    undefined=jinja2.StrictUndefined,
    # Templates never change while the service runs: no stat() on every render.
    auto_reload=False,
    keep_trailing_newline=True,
)


@dataclass(frozen=True, slots=True)
class RenderedEmail:
    html: str
    text: str


def render_email(template: str, /, **context: object) -> RenderedEmail:
    """Both bodies of the message `template` (for example "welcome") with `context`."""
    return RenderedEmail(
        html=_environment.get_template(f"{template}.html").render(context),
        text=_environment.get_template(f"{template}.txt").render(context),
    )
