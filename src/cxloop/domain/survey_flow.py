"""The survey flow at run time: which pages a respondent goes through, and where the survey ends.

A survey's content may hold a ``flow`` (see :mod:`cxloop.domain.survey_content`): blocks,
branches, randomizers, embedded data values and end-of-survey elements. ``route()`` walks it
with the answers given so far and gives the **route**: the pages in the order the respondent
meets them, the end-of-survey element the walk stops at (if any), and the embedded data the flow
set on the way (randomizer assignments included). Without a flow the route is every page in
page order.

The route is walked again after every page, so a branch on the consent question takes effect as
soon as the consent page is submitted. What must not change between walks does not: a
randomizer's assignment is read back from the embedded data it was stored in, and random numbers
in embedded data values (``${rand://int/1:4}``) come from a seed the response keeps.

A randomizer's elements are keyed by their block id (a nested branch or randomizer by its
position, ``"2"``); the assignment is those keys joined by ``|`` in the order presented. Which
elements a new respondent gets is the caller's `Chooser`: `choose_evenly` takes the elements
presented least often so far (a random pick among equals) in a random order.
"""

from __future__ import annotations

import random
import re
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import quote

from cxloop.domain.answers import resolve_answer_field, shown_questions
from cxloop.domain.conditions import evaluate
from cxloop.domain.piped_text import PipedTextContext, PipedTextRenderer, Reference, parse
from cxloop.domain.survey_content import (
    URL_PREFIXES,
    FlowBlock,
    FlowBranch,
    FlowEmbeddedData,
    FlowEndSurvey,
    FlowRandomizer,
    SurveyContent,
)

# Picks the keys to present for a randomizer that has no assignment yet, in presentation order.
Chooser = Callable[[FlowRandomizer, list[str]], list[str]]

EMBEDDED_FIELD_PREFIX = "e://Field/"
SCREENED_OUT_FIELD = "Q_TerminateFlag"  # the reference product's name, with value "Screened"
_RAND_RE = re.compile(r"\$\{rand://int/(-?\d{1,9}):(-?\d{1,9})\}")


@dataclass(frozen=True)
class Route:
    """The pages a respondent goes through, in order, and how the survey ends."""

    pages: tuple[int, ...]
    end: FlowEndSurvey | None = None  # None: the survey's normal end (after the last page)
    data: dict[str, str] = field(default_factory=dict)  # embedded data the flow set
    assigned: dict[str, list[str]] = field(default_factory=dict)  # new randomizer assignments
    # The walk stopped at a randomizer the respondent has not reached yet (see `route`).
    pending: bool = False


def route(
    content: SurveyContent,
    answers: Mapping[str, Any],
    embedded_data: Mapping[str, Any],
    choose: Chooser,
    seed: str = "",
    *,
    lazy: bool = False,
    submitted: int | None = None,
) -> Route:
    """Walk the flow with these answers and embedded data (see the module docstring).

    ``lazy`` (the respondent's pages): a randomizer without an assignment is assigned only
    when the respondent reaches it, that is when no page before it that shows a question is
    still to come after ``submitted`` (the page just submitted; None: none yet). Otherwise
    the walk stops there (``pending``), so a respondent who is screened out before it is
    never assigned, nor counted.
    """
    if content.flow is None:
        return Route(tuple(content.page_numbers()))
    walker = _Walker(content, answers, embedded_data, choose, seed)
    walker.lazy, walker.submitted = lazy, submitted
    walker.walk(content.flow, "flow")
    return Route(tuple(walker.pages), walker.end, walker.data, walker.assigned, walker.pending)


def choose_evenly(
    randomizer: FlowRandomizer, keys: Sequence[str], counts: Mapping[str, int], rng: random.Random
) -> list[str]:
    """``randomizer.present`` of ``keys`` in a random order: with ``even``, the ones presented
    least often so far (``counts``), a random pick among equals; without, any."""
    present = min(randomizer.present, len(keys))
    if randomizer.even:
        ranked = sorted(keys, key=lambda key: (counts.get(key, 0), rng.random()))
        chosen = ranked[:present]
    else:
        chosen = rng.sample(list(keys), present)
    rng.shuffle(chosen)
    return chosen


def parse_assignment(value: Any) -> list[str]:
    """A stored assignment (``"BL_a|BL_c"``) as its keys."""
    return [key for key in value.split("|") if key] if isinstance(value, str) else []


def element_keys(randomizer: FlowRandomizer) -> list[str]:
    """The keys of a randomizer's elements: a block's id, else the element's position."""
    keys: list[str] = []
    for index, element in enumerate(randomizer.flow, 1):
        key = element.block if isinstance(element, FlowBlock) else str(index)
        keys.append(key if key not in keys else f"{key}#{index}")
    return keys


def shown_route_pages(
    content: SurveyContent, route_: Route, answers: Mapping[str, Any]
) -> list[int]:
    """The route's pages that show at least one question, given these answers."""
    return [page for page in route_.pages if shown_questions(content, page, answers)]


def next_route_page(
    content: SurveyContent, route_: Route, answers: Mapping[str, Any], after: int | None = None
) -> int | None:
    """The first page after ``after`` on the route that shows a question; None at the end.

    A page not on the route (the flow changed under the respondent) goes back to the first.
    """
    pages = list(route_.pages)
    start = pages.index(after) + 1 if after in pages else 0
    for page in pages[start:]:
        if shown_questions(content, page, answers):
            return page
    return None


def previous_route_page(
    content: SurveyContent, route_: Route, answers: Mapping[str, Any], before: int
) -> int | None:
    """The last page before ``before`` on the route that shows a question; None if none."""
    pages = list(route_.pages)
    if before not in pages:
        return None
    for page in reversed(pages[: pages.index(before)]):
        if shown_questions(content, page, answers):
            return page
    return None


def routed_content(content: SurveyContent, route_: Route) -> SurveyContent:
    """The content with only the questions on the route (for checking a finished response:
    a question the flow never showed is never required)."""
    if content.flow is None:
        return content
    on_route = set(route_.pages)
    return content.model_copy(
        update={"questions": [q for q in content.questions if q.page in on_route]}
    )


def without_off_route_requirements(
    content: SurveyContent,
    problems: list[Any],
    answers: Mapping[str, Any],
    embedded_data: Mapping[str, Any],
) -> list[Any]:
    """A response's problems less "required" for questions its flow route never shows (a
    response from the API or a file: its stored randomizer assignment decides; without one,
    no element of that randomizer is required)."""
    if content.flow is None or not any(p.code == "required" for p in problems):
        return problems
    answers = answers if isinstance(answers, Mapping) else {}
    embedded_data = embedded_data if isinstance(embedded_data, Mapping) else {}
    on_route = set(route(content, answers, embedded_data, lambda r, keys: []).pages)
    pages = {q.qid: q.page for q in content.questions}
    return [p for p in problems if p.code != "required" or pages.get(p.qid or "") in on_route]


def render_url(template: str, context: PipedTextContext) -> str | None:
    """A redirect address with its piped text filled in, each value URL-encoded; None when the
    result is not a web address (so nobody is sent to ``javascript:``)."""
    renderer = PipedTextRenderer(context)
    out: list[str] = []
    for segment in parse(template):
        if isinstance(segment, Reference):
            out.append(quote(renderer.text(segment.raw), safe=""))
        else:
            out.append(segment.raw)
    url = "".join(out).strip()
    if not url.startswith(URL_PREFIXES) or any(c in url for c in "\r\n\t\x00 "):
        return None
    return url


class _Walker:
    def __init__(
        self,
        content: SurveyContent,
        answers: Mapping[str, Any],
        embedded_data: Mapping[str, Any],
        choose: Chooser,
        seed: str,
    ) -> None:
        self.content = content
        self.answers = answers
        self.embedded = embedded_data
        self.choose = choose
        self.seed = seed
        self.block_pages = content.block_pages()
        self.pages: list[int] = []
        self.end: FlowEndSurvey | None = None
        self.data: dict[str, str] = {}
        self.assigned: dict[str, list[str]] = {}
        self.lazy = False
        self.submitted: int | None = None
        self.pending = False

    def reached(self) -> bool:
        """Whether the respondent has come this far: every page so far that shows a question
        is at or before the page just submitted."""
        if not self.lazy:
            return True
        still = self.pages
        if self.submitted is not None:
            if self.submitted not in self.pages:
                return False
            still = self.pages[self.pages.index(self.submitted) + 1 :]
        return not any(shown_questions(self.content, page, self.answers) for page in still)

    def walk(self, elements: Sequence[Any], path: str) -> bool:
        """Walk elements in order; False once an end of survey is reached."""
        for index, element in enumerate(elements):
            where = f"{path}[{index}]"
            if isinstance(element, FlowBlock):
                # A block met twice is shown once, where it is first met.
                for page in self.block_pages.get(element.block, []):
                    if page not in self.pages:
                        self.pages.append(page)
            elif isinstance(element, FlowBranch):
                if evaluate(element.condition, self.resolve) and not self.walk(
                    element.flow, f"{where}.flow"
                ):
                    return False
            elif isinstance(element, FlowRandomizer):
                keys = element_keys(element)
                chosen = self.assignment(element, keys)
                if chosen is None:
                    self.pending = True
                    return False
                for key in chosen:
                    position = keys.index(key)
                    if not self.walk([element.flow[position]], f"{where}.flow[{position}]"):
                        return False
            elif isinstance(element, FlowEmbeddedData):
                for item in element.fields:
                    self.data[item.name] = self.value(item.value, f"{where}.{item.name}")
            elif isinstance(element, FlowEndSurvey):
                self.end = element
                return False
        return True

    def assignment(self, randomizer: FlowRandomizer, keys: list[str]) -> list[str] | None:
        stored = parse_assignment(self.data.get(randomizer.id, self.embedded.get(randomizer.id)))
        present = min(randomizer.present, len(keys))
        if len(stored) == present and len(set(stored)) == present and set(stored) <= set(keys):
            chosen = stored
        elif not self.reached():
            return None
        else:
            chosen = [key for key in self.choose(randomizer, keys) if key in keys][:present]
            self.assigned[randomizer.id] = chosen
        self.data[randomizer.id] = "|".join(chosen)
        return chosen

    def resolve(self, name: str) -> Any:
        if name.startswith(EMBEDDED_FIELD_PREFIX):
            field_name = name.removeprefix(EMBEDDED_FIELD_PREFIX)
            if field_name in self.data:
                return self.data[field_name]
            if field_name in self.embedded:
                return self.embedded[field_name]
            declared = self.content.embedded_data_field(field_name)
            return declared.default if declared else None
        return resolve_answer_field(self.content, self.answers, name)

    def value(self, template: str, where: str) -> str:
        # The same seed and place give the same number on every walk.
        rng = random.Random(f"{self.seed}|{where}")

        def draw(match: re.Match[str]) -> str:
            low, high = sorted((int(match[1]), int(match[2])))
            return str(rng.randint(low, high))

        template = _RAND_RE.sub(draw, template)
        context = PipedTextContext(
            survey_content=self.content,
            answers=self.answers,
            embedded_data={**self.embedded, **self.data},
        )
        return PipedTextRenderer(context).text(template)
