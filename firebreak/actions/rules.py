"""Rules from a verdict to actions: which rule fits a judged upload, and what it says to do.

The best match (the allow-list match when one suppressed the rest) picks the rule: the first
whose bank and label patterns (shell-style, `*` for any) and verdict fit. An allowed upload or
one that matched nothing is allowed without rules.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase
from typing import Literal

from firebreak.errors import FirebreakError
from firebreak.match import ItemMatch, Judgement, Verdict
from firebreak.settings import ActionRule

Decision = Literal["block", "hold", "allow"]
KNOWN_ACTIONS = ("block", "hold", "allow", "webhook")


@dataclass(frozen=True)
class Plan:
    """What to do with one upload: the decision, the actions to run, and why."""

    decision: Decision
    actions: tuple[str, ...]
    rule: int | None
    """The index of the rule that fitted; None when no rule applied."""
    reason: str


def label_of(match: ItemMatch, bank_labels: dict[str, str]) -> str:
    """The match's label: its item's metadata `label`, else its bank's, else empty."""
    label = match.item.metadata.get("label") if match.item.metadata else None
    return str(label) if label else bank_labels.get(match.item.bank, "")


def plan(judged: Judgement, rules: list[ActionRule], bank_labels: dict[str, str]) -> Plan:
    if judged.allowed is not None:
        allowed = judged.allowed.item
        return Plan("allow", (), None, f"allow-listed by {allowed.bank}/{allowed.name}")
    if judged.verdict is Verdict.NO_MATCH:
        return Plan("allow", (), None, "no match")
    best = judged.acted_on[0] if judged.acted_on else judged.matches[0]
    label = label_of(best, bank_labels)
    for index, rule in enumerate(rules):
        if rule.verdict != judged.verdict.value:
            continue
        if not fnmatchcase(best.item.bank, rule.bank) or not fnmatchcase(label, rule.label):
            continue
        actions = tuple(rule.actions)
        decision: Decision = (
            "block" if "block" in actions else "hold" if "hold" in actions else "allow"
        )
        why = f"{judged.verdict.value} on {best.item.bank}/{best.item.name} (rule {index})"
        return Plan(decision, actions, index, why)
    # No rule fits: a match is blocked and a review held, the safe default.
    fallback: Decision = "block" if judged.verdict is Verdict.MATCH else "hold"
    return Plan(fallback, (fallback,), None, f"{judged.verdict.value}, no rule fits")


TEXT_BANK = "text"
"""The bank name a post's verdict answers to in the rules: `{"bank": "text", "label": ORG}`."""


def plan_text(verdict: str, org: str, rules: list[ActionRule]) -> Plan:
    """The plan for a post: the first rule whose bank fits `text`, whose label fits the
    organisation named and whose verdict fits; the same safe default as uploads otherwise."""
    if verdict not in ("match", "review"):
        return Plan("allow", (), None, "no match")
    for index, rule in enumerate(rules):
        if rule.verdict != verdict:
            continue
        if not fnmatchcase(TEXT_BANK, rule.bank) or not fnmatchcase(org, rule.label):
            continue
        actions = tuple(a for a in rule.actions if not a.startswith("bank:"))
        decision: Decision = (
            "block" if "block" in actions else "hold" if "hold" in actions else "allow"
        )
        return Plan(
            decision,
            actions,
            index,
            f"{verdict} naming {org or 'no listed organisation'} (rule {index})",
        )
    fallback: Decision = "block" if verdict == "match" else "hold"
    return Plan(
        fallback,
        (fallback,),
        None,
        f"{verdict} naming {org or 'no listed organisation'}, no rule fits",
    )


def carry_out(actions: Iterable[str], do: Callable[[str], None]) -> dict[str, str]:
    """Run each action with `do`; what each did: "done", or "failed: <reason>". An action that
    fails (a FirebreakError) does not stop the others."""
    done: dict[str, str] = {}
    for action in actions:
        try:
            do(action)
            done[action] = "done"
        except FirebreakError as exc:
            done[action] = f"failed: {exc}"
    return done


def check_rules(rules: list[ActionRule]) -> None:
    """Refuse rules naming an action Firebreak does not know (ValueError)."""
    for index, rule in enumerate(rules):
        for action in rule.actions:
            if action not in KNOWN_ACTIONS and not (action.startswith("bank:") and action[5:]):
                raise ValueError(f"action rule {index}: unknown action {action!r}")
