"""The officer's desk in a real browser: the work queue on the admin's front page
and a model version's page, read top to bottom. No element's text may overflow
its box (nothing clipped or spilling out), folded parts opened included.

Screenshots go to test-artifacts/screenshots/ with the other journeys'.
"""

from __future__ import annotations

from datetime import timedelta
from typing import Any

import pytest
from django.utils import timezone
from playwright.sync_api import Page, expect

from governance import roles
from governance.models import Decision, Job
from governance.services.bias import bias_check_run
from governance.services.explanations import explainer_fit
from tests.browser.conftest import ContextFactory, Screenshot, admin_login
from tests.factories import DecisionFactory, ExplanationRequestFactory, JobFactory

pytestmark = [
    pytest.mark.slow,
    pytest.mark.django_db(transaction=True, serialized_rollback=True),
]

# Elements that hold text themselves, laid out as boxes (an inline element has
# no width of its own to overflow), whose content is wider than the box.
OVERFLOWING = """
() => {
  const found = [];
  for (const el of document.querySelectorAll('#container *')) {
    const style = getComputedStyle(el);
    if (style.display === 'inline' || style.display === 'none') continue;
    if (['INPUT', 'SELECT', 'TEXTAREA', 'OPTION', 'IMG', 'svg'].includes(el.tagName))
      continue;
    if (el.getClientRects().length === 0) continue;  // not rendered
    // Text for screen readers only (the admin's visually-hidden labels).
    if (el.closest('.visually-hidden')) continue;
    const ownText = Array.from(el.childNodes).some(
      (n) => n.nodeType === Node.TEXT_NODE && n.textContent.trim());
    const text = ownText || Array.from(el.children).some(
      (c) => getComputedStyle(c).display === 'inline' && c.textContent.trim());
    if (!text) continue;
    if (el.scrollWidth > el.clientWidth + 1) {
      found.push(`${el.tagName}#${el.id}.${el.className}: ` +
        `${el.scrollWidth} > ${el.clientWidth}: ${el.textContent.trim().slice(0, 80)}`);
    }
  }
  return found;
}
"""


# Each line of an SVG chart against its box: drawn centred in a box of
# `box` user units, a line fits when it is narrower than the box less its padding,
# and it must lie inside the drawing.
LINES_OUTSIDE_BOXES = """
(svg) => {
  const box = 170;  // box_width of reports.dossier.lineage.lineage_detail_chart
  const view = svg.viewBox.baseVal;
  const found = [];
  for (const text of svg.querySelectorAll('text')) {
    const b = text.getBBox();
    if (b.width > box - 4 || b.x < 0 || b.x + b.width > view.width)
      found.push(`${text.textContent}: ${b.x.toFixed(0)}+${b.width.toFixed(0)}`);
  }
  return found;
}
"""


def _no_text_overflows(page: Page) -> None:
    # Open every folded part first: what is folded must fit too.
    page.evaluate(
        "() => document.querySelectorAll('details').forEach(d => d.open = true)"
    )
    overflowing = page.evaluate(OVERFLOWING)
    assert overflowing == [], overflowing
    page.evaluate(
        "() => document.querySelectorAll('details').forEach(d => d.open = false)"
    )


@pytest.fixture
def desk(lineage: dict[str, Any], user_in_role: Any) -> dict[str, Any]:
    """A fine-tuned version with bias checks of it and its base on both domains
    (so the transfer table is full), its explainer, and work waiting."""
    child, base = lineage["child"], lineage["base"]
    for version in (base, child):
        for domain in (lineage["source"], lineage["target"]):
            bias_check_run(version=version, domain=domain, actor="test")
    explainer_fit(version=child, actor="test")
    user_in_role(roles.COMPLIANCE_OFFICER, username="officer-a")
    now = timezone.now()
    decision = DecisionFactory(model_version=child)
    overdue = ExplanationRequestFactory(
        decision=decision, status="assigned", due_at=now - timedelta(days=2)
    )
    JobFactory(
        model_version=child,
        kind=Job.Kind.RECOURSE_RECHECK,
        state=Job.State.RUNNING,
        progress_message="re-scoring counterfactual 3 of 12",
    )
    return {**lineage, "overdue": overdue}


def test_the_officer_reads_the_queue_and_a_version_page_without_clipped_text(
    desk: dict[str, Any], new_context: ContextFactory, screenshot: Screenshot
) -> None:
    page = admin_login(new_context(), "officer-a")
    queue = page.locator("#work-queue")
    expect(queue.locator("#queue-requests_overdue .count")).to_have_text("1")
    expect(queue.locator("#queue-jobs_running .count")).to_have_text("1")
    expect(queue.locator("#queue-job-list")).to_contain_text(
        "re-scoring counterfactual 3 of 12"
    )
    # The fine-tuned version has no dossier and is a draft; the base model has
    # no explainer.
    expect(queue.locator("#queue-versions_without_explainer .count")).to_have_text("1")
    # The app list stays below the queue.
    expect(page.locator("#all-records")).to_contain_text("Model versions")
    _no_text_overflows(page)
    screenshot(page, "desk-01-officer-work-queue")

    queue.locator("#queue-requests_overdue th a").click()
    rows = page.locator("#result_list tbody tr")
    expect(rows).to_have_count(1)
    expect(rows.first).to_contain_text(desk["overdue"].number)
    screenshot(page, "desk-02-officer-overdue-requests")

    child = desk["child"]
    page.goto(f"/admin/governance/modelversion/{child.pk}/change/")
    summary = page.locator("#version-summary")
    expect(summary.locator("#approval-needs")).to_contain_text(
        "a rendered model dossier"
    )
    expect(summary.locator("#summary-performance table")).to_contain_text("95% CI")
    verdicts = summary.locator("#bias-by-attribute tbody tr")
    # One row per domain and attribute (and intersection), each with a verdict.
    checks = {c.domain.name: c for c in child.bias_checks.select_related("domain")}
    attributes = sum(len(c.result["attributes"]) for c in checks.values())
    assert verdicts.count() >= attributes
    # Every finding in full: the sentences are not cut mid-number.
    for check in checks.values():
        for finding in check.result["findings"]:
            if finding["severity"] in ("fail", "warn", "insufficient"):
                expect(summary).to_contain_text(finding["sentence"])
    expect(summary.locator("#summary-fidelity")).to_contain_text("held-out rows")
    expect(summary.locator("#flip-flags")).to_have_text(
        f"{Decision.objects.filter(model_version=child, needs_review=True).count()} "
        "decisions flagged for review"
    )
    # Charts inline: the group rates with the four-fifths line.
    expect(page.locator(".group-charts figure.chart img").first).to_be_attached()
    # The lineage tree inline: base and fine-tuned version, each box with its
    # layers and data, and no line of text wider than its box (170 units).
    lineage = page.locator("#summary-lineage svg")
    expect(lineage).to_be_visible()
    expect(lineage.locator("desc")).to_contain_text(f"{child.name} (finetuned")
    expect(lineage.locator("desc")).to_contain_text("layers trained")
    expect(lineage.locator("desc")).to_contain_text(f"derived from {desk['base'].name}")
    too_wide = lineage.evaluate(LINES_OUTSIDE_BOXES)
    assert too_wide == [], too_wide
    # The long transfer table is folded.
    expect(page.locator("details#bias-transfer")).not_to_have_attribute("open", "")
    screenshot(page, "desk-03-officer-version-page")
    height = page.evaluate("() => document.documentElement.scrollHeight")
    _no_text_overflows(page)
    page.locator(".group-charts").first.locator("summary").click()
    screenshot(page, "desk-04-officer-version-group-rates")
    print(f"version page height: {height} px")
