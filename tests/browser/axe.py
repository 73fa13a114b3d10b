"""axe-core in the browser tests: injection, one check of a page (or a dialog), the findings.

axe-core 4.14.1 is vendored next to this file (see static/vendor/VENDORED.md); it is injected
as an init script, which the page's CSP (script-src 'self') does not apply to.
"""

import json
from pathlib import Path

AXE = Path(__file__).resolve().parent / "vendor" / "axe.min.js"

AXE_RUN = """async (selector) => {
  const result = await axe.run(selector ? document.querySelector(selector) : document, {
    runOnly: { type: "tag", values: ["wcag2a", "wcag2aa", "wcag21a", "wcag21aa", "best-practice"] },
    resultTypes: ["violations"],
  });
  return result.violations.map((v) => ({
    id: v.id, impact: v.impact, help: v.help,
    nodes: v.nodes.map((n) => n.target.join(" ") + " :: " +
      n.failureSummary.split("\\n").slice(1, 3).join(" ")),
  }));
}"""


# The elements reaching past the right edge: what to fix when the page scrolls sideways.
WIDE_ELEMENTS = """() => [...document.querySelectorAll('body *')].filter((n) => {
  const r = n.getBoundingClientRect();
  return r.width && r.right > window.innerWidth + 1;
}).slice(0, 8).map((n) => n.tagName + '#' + n.id + '.' + n.className + ' ' +
  Math.round(n.getBoundingClientRect().right))"""


def axe_violations(page, selector: str | None = None) -> list[dict]:
    return page.evaluate(AXE_RUN, selector)


def overflow(page) -> int:
    """How many CSS px the page scrolls sideways (0 is what we want)."""
    return page.evaluate("() => document.documentElement.scrollWidth - window.innerWidth")


class Findings:
    """Everything found over the sweep, asserted once at the end so one run lists all of it."""

    def __init__(self):
        self.problems: dict[str, list] = {}
        self.counts: dict[str, int] = {}
        self.lesser: dict[str, int] = {}  # moderate/minor findings by rule: reported, not failed

    def check(self, page, where: str, selector: str | None = None) -> None:
        violations = axe_violations(page, selector)
        bad = [v for v in violations if v["impact"] in ("serious", "critical")]
        self.counts[where] = sum(len(v["nodes"]) for v in bad)
        for v in violations:
            if v not in bad:
                self.lesser[v["id"]] = self.lesser.get(v["id"], 0) + len(v["nodes"])
        if bad:
            self.problems[where + " axe"] = bad
        sideways = overflow(page)
        if sideways > 0:
            self.problems[where + " scroll"] = [
                f"scrolls {sideways}px sideways",
                *page.evaluate(WIDE_ELEMENTS),
            ]

    def assert_clean(self) -> None:
        print("serious+critical axe nodes per view:", json.dumps(self.counts, indent=1))
        print("moderate/minor axe nodes by rule (not failing):", json.dumps(self.lesser))
        assert not self.problems, json.dumps(self.problems, indent=1)


def install(page) -> None:
    """Make axe available on every page this Playwright page loads from now on."""
    page.add_init_script(path=str(AXE))
