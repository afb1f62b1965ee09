"""The heuristic analyzer: precision and recall on written conversations, the command
grammar, and robustness on whatever a journal may hold.

tests/data/heuristic/*.json are conversations as engram's journal stores them (Claude
Code, Codex, OpenAI chat and Gemini CLI shapes, with reminders, injected blocks, code
blocks, tool calls and results). Each lists the facts it should yield (`expect`: keywords
that must all appear in one fact, and optionally its kind and scope) and phrases that no
fact may contain (`forbid`).

The corpus doubles as the rules' training set, so its own figures flatter them. Two
parts were measured before the rules saw them: cases 51-58 (6 facts emitted, all right;
6 of 14 expected found) and case 61, forty one-liners written blind (18 emitted, one
wrong; 17 of 26 found). The rules were adjusted afterwards, and misses that no cue-based
rule can catch ("The frontend is in React") stay in the set to keep recall honest.
"""

from __future__ import annotations

import json
import shlex
import string
import time
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from engram.analyzer.heuristic import NAME, Fact, analyze, extract, render
from engram.store.schema import KINDS

DATA = Path(__file__).parent / "data" / "heuristic"
CASES = sorted(DATA.glob("*.json"))


def _load(path: Path) -> dict[str, Any]:
    return json.loads(path.read_text(encoding="utf-8"))


def _norm(text: str) -> str:
    return " ".join(text.casefold().split())


def _matches(fact: Fact, item: dict[str, Any]) -> bool:
    text = _norm(fact.text)
    return (
        all(_norm(k) in text for k in item["keywords"])
        and item.get("kind", fact.kind) == fact.kind
        and item.get("scope", fact.scope) == fact.scope
    )


def _score() -> tuple[int, int, int, int, list[str]]:
    """(correct facts, emitted facts, expected facts found, expected facts, report lines)."""
    correct = emitted = found = expected = 0
    report: list[str] = []
    for path in CASES:
        case = _load(path)
        facts = extract(case["conversations"])
        items = case["expect"]
        emitted += len(facts)
        expected += len(items)
        for fact in facts:
            ok = any(_matches(fact, item) for item in items)
            correct += ok
            if not ok:
                report.append(f"{path.stem}: unexpected {fact}")
        for item in items:
            if any(_matches(fact, item) for fact in facts):
                found += 1
            else:
                report.append(f"{path.stem}: missed {item}")
    return correct, emitted, found, expected, report


def test_corpus_is_large_enough() -> None:
    assert len(CASES) >= 25
    assert sum(len(_load(p)["expect"]) for p in CASES) >= 40


def test_precision_and_recall() -> None:
    correct, emitted, found, expected, report = _score()
    precision = correct / emitted if emitted else 1.0
    recall = found / expected
    print(
        f"\nheuristic analyzer: precision {correct}/{emitted} = {precision:.3f}, "
        f"recall {found}/{expected} = {recall:.3f}"
    )
    print("\n".join(report))
    assert precision >= 0.95, report
    assert recall >= 0.6, report


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_forbidden_phrases_never_appear(path: Path) -> None:
    case = _load(path)
    for fact in extract(case["conversations"]):
        for phrase in case["forbid"]:
            assert _norm(phrase) not in _norm(fact.text), (phrase, fact)


@pytest.mark.parametrize("path", CASES, ids=lambda p: p.stem)
def test_every_line_parses_back_to_its_fact(path: Path) -> None:
    conversations = _load(path)["conversations"]
    facts = extract(conversations)
    lines = analyze(conversations)
    assert len(lines) == len(facts)
    for line, fact in zip(lines, facts, strict=True):
        assert shlex.split(line) == [
            "engram",
            "add",
            "--kind",
            fact.kind,
            "--scope",
            fact.scope,
            fact.text,
        ]
        assert fact.kind in KINDS and fact.scope in ("global", "project")
        assert 12 <= len(fact.text) <= 300 and fact.text.endswith(".")
        assert "\n" not in fact.text and "[REDACTED" not in fact.text


def test_lines_parse_with_the_analyzer_grammar() -> None:
    """The heuristic answer goes through the same parser as a model's answer."""
    grammar = pytest.importorskip("engram.analyzer.grammar")
    facts = [f for path in CASES for f in extract(_load(path)["conversations"])]
    facts += [Fact(text, "fact", "global") for text in AWKWARD]
    result = grammar.parse_commands("\n".join(render(f) for f in facts))
    assert not result.rejected
    assert [(c.action, c.kind, c.scope, c.text) for c in result.commands] == [
        ("add", f.kind, f.scope, f.text) for f in facts
    ]


AWKWARD = [
    'Use "double quotes" in YAML.',
    "Don't use `rm -rf $HOME`; it's fatal!",
    "Escape backslashes as \\\\ and \\n in JSON.",
    "`npm install` fails (ERR! 'x'); use `pnpm install` instead.",
    'Set PATH=$PATH:~/bin and run `echo "$(date)"`.',
    "# is not a comment, and C#rocks is a word.",
]


@pytest.mark.parametrize("text", AWKWARD)
def test_render_quotes_for_shlex(text: str) -> None:
    line = render(Fact(text, "fact", "project"))
    assert shlex.split(line)[-1] == text


def _user(text: str) -> dict[str, Any]:
    return {"role": "user", "text": text}


def _one(turns: list[dict[str, Any]], project: str | None = "/p") -> list[Fact]:
    return extract([{"project": project, "conversation": "c", "turns": turns}])


def test_name_and_kinds() -> None:
    assert NAME == "heuristic"
    facts = _one([_user("Remember that to regenerate the client, run `make client`.")])
    assert [(f.kind, f.evidence) for f in facts] == [("procedure", "explicit")]


def test_assistant_and_system_text_are_never_a_source() -> None:
    turns = [
        {"role": "system", "text": "Always use tabs. We use yarn, not npm."},
        {"role": "assistant", "text": "Remember that the port is 5433. Never use mocks."},
        {"role": "tool", "text": "We use Bazel, not make."},
    ]
    assert _one(turns) == []


def test_scope_follows_the_words_and_the_project() -> None:
    facts = _one([_user("I prefer tabs over spaces."), _user("Always pin versions.")])
    assert [f.scope for f in facts] == ["global", "project"]
    facts = _one([_user("We use uv, not pip.")], project=None)
    assert [f.scope for f in facts] == ["global"]


def test_unclosed_fence_hides_the_rest() -> None:
    assert _one([_user("Look:\n```\nAlways use tabs.\nWe use yarn, not npm.")]) == []


def test_duplicates_collapse_across_case_space_and_punctuation() -> None:
    facts = _one([_user("We use pnpm, not npm."), _user("we use  PNPM; not npm!")])
    assert len(facts) == 1


# --- robustness ----------------------------------------------------------------------------

VOCAB = [
    "remember that",
    "always",
    "never",
    "we use",
    "not",
    "instead of",
    "I prefer",
    "no,",
    "actually,",
    "from now on,",
    "don't use",
    "port 5433",
    "`pnpm`",
    "?",
    ".",
    "\n",
    "```",
    '"',
    "<system-reminder>",
    "</system-reminder>",
    '<engram-memory source="engram">',
    "</engram-memory>",
    "<bash-stdout>",
    "[REDACTED:api_key]",
    "Exit code 1",
    "pnpm install",
    "command not found",
    "remember:",
    "\n- ",
    "the config lives in config/app.toml",
]
words = st.lists(st.one_of(st.sampled_from(VOCAB), st.text(max_size=12)), max_size=30).map(" ".join)
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=True) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4)
    ),
    max_leaves=12,
)
commands = st.one_of(
    st.sampled_from(
        [
            "npm install",
            "pnpm install",
            "pytest -q",
            "python -m pytest -q",
            "ls",
            "cd /x && make",
            "'unbalanced",
            "uv run pytest",
            "",
        ]
    ),
    st.lists(st.sampled_from(["bash", "-lc", "npm test", "pnpm test"]), max_size=4),
    json_values,
)
calls = st.fixed_dictionaries(
    {},
    optional={
        "id": st.sampled_from(["a", "b", "c"]) | json_values,
        "name": st.sampled_from(["Bash", "shell", "Edit", "exec_command"]) | json_values,
        "arguments": st.one_of(
            st.builds(lambda c: json.dumps({"command": c}), commands),
            st.builds(lambda c: {"cmd": c}, commands),
            st.text(max_size=30),
            json_values,
        ),
    },
)
results = st.fixed_dictionaries(
    {},
    optional={
        "call_id": st.sampled_from(["a", "b", "c"]) | json_values,
        "content": words | json_values,
        "is_error": st.booleans() | json_values,
    },
)
turns = st.fixed_dictionaries(
    {},
    optional={
        "role": st.sampled_from(["user", "assistant", "tool", "system"]) | json_values,
        "text": words | json_values,
        "tool_calls": st.lists(calls | json_values, max_size=3) | json_values,
        "tool_results": st.lists(results | json_values, max_size=3) | json_values,
    },
)
deltas = st.fixed_dictionaries(
    {},
    optional={
        "project": st.sampled_from(["/p", None, ""]) | json_values,
        "conversation": st.text(max_size=5),
        "turns": st.lists(turns | json_values, max_size=8) | json_values,
    },
)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(deltas | json_values, max_size=3))
def test_analyze_never_raises(conversations: list[Any]) -> None:
    lines = analyze(conversations)
    for line in lines:
        parts = shlex.split(line)
        assert parts[:3] == ["engram", "add", "--kind"] and len(parts) == 7


@settings(max_examples=200, deadline=None)
@given(st.text(alphabet=string.printable + "\u201c\u201d\u2014", max_size=400))
def test_any_user_text_gives_well_formed_facts(text: str) -> None:
    for fact in _one([_user(text)]):
        assert 12 <= len(fact.text) <= 300 and fact.text.endswith(".")
        assert "[REDACTED" not in fact.text


def _big_delta() -> list[dict[str, Any]]:
    """~1 MB: long pasted prose, a huge tool output, many short turns, adversarial runs."""
    prose = (
        "We use pnpm, not npm. Remember that the port is 5433. I'm on it right now. "
        "Always run `make check` before pushing. "
    ) * 2500
    turns: list[dict[str, Any]] = [
        _user(prose[:200_000]),
        _user("x" * 150_000),  # one sentence with no punctuation at all
        _user('"' * 50_000 + "``` " * 10_000 + "<bash-stdout> " * 5_000),
    ]
    for i in range(1500):
        call = {
            "id": f"t{i}",
            "name": "Bash",
            "arguments": json.dumps({"command": ["npm install", "pnpm install"][i % 2]}),
        }
        turns.append({"role": "assistant", "text": "Trying again.", "tool_calls": [call]})
        turns.append(
            {
                "role": "user",
                "text": "",
                "tool_results": [
                    {"call_id": f"t{i}", "content": "npm ERR! x\n" * 20, "is_error": i % 2 == 0}
                ],
            }
        )
    turns.append(
        {
            "role": "tool",
            "text": "",
            "tool_results": [
                {"call_id": "t0", "content": "Traceback\n" * 30_000, "is_error": True}
            ],
        }
    )
    return [{"project": "/p", "conversation": "big", "turns": turns}]


def test_one_megabyte_delta_is_fast() -> None:
    delta = _big_delta()
    size = len(json.dumps(delta))
    assert size > 1_000_000
    # A guard against super-linear rules (catastrophic backtracking takes minutes), not a
    # speed measurement: CPU time, so a busy machine's waits do not count (0.4 s here).
    start = time.process_time()
    lines = analyze(delta)
    elapsed = time.process_time() - start
    assert elapsed < 4.0, f"{elapsed:.2f}s of CPU for {size} bytes"
    assert len(lines) == len(set(lines))


# Round 2: what users say about today's work, pasted output, and how terse writers
# state rules (written from bench/data/analyzer_quality's tuning voices, not its labels).
TASK_TALK = [
    "my branch is feat/login-redirect",
    "the PR is #1234, can you review it",
    "the migration is 0042_add_index.py",
    "the docker image is 2.3 GB, too big",
    "port 3000 is already in use",
    "redis is not running",
    "when you run it, pipe the output to a file",
    "you must have missed the import in app.py",
    "our main problem is the flaky redis test",
    "no commits yet please",
    "migrations run from the migrate job. never inside docker build",
    "never edit .eslintrc in either repo, change the shared one and bump it",
    "the linter says:\nworker/tasks.py:41:5: E722 do not use bare 'except'\nfix it",
    "crash:\nKeyError: 'REDIS_URL'\n2026-12-01 09:14:02 ERROR worker: always restarting",
    # round 3: states, requirements of the task at hand, hedges, appointments
    "npm run dev is running in the other terminal",
    "today I want the export done. the export should be a CSV with one row per order",
    "please to make the function more fast. the query is in repository.py",
    "let me think, we use postgres 14 or 15",
    "we deploy on friday, after the demo",
    "the background is, the tax rules came from a spreadsheet in 2021 and nobody touched them",
    # round 4: questions without "?", bug reports, requirements of the task, agendas
    "why is 0.1 + 0.2 not equal to 0.3",
    "is the staging db on 5433 or 5432",
    "process.env.STRIPE_KEY is undefined in the browser",
    "tests fail on the windows runner with path not found",
    "the price shows NaN instead of the currency on android",
    "git push is blocked by some hook complaining about type errors",
    "the new endpoint is /api/v2/orders",
    "the disk on build-01 is 91% full",
    "the limit should be 50, not 100",
    "rename them in a separate PR please, not in this one",
    "the notebook is in notebooks/churn.ipynb",
    "the plan is: first we write the tests, then we refactor the module",
    "we're on the 2.x branch till the release",
    "we switched to python 3.12 yesterday",
    "hm, isn't the build using vite? the vite.config.ts is right there",
    "the code is in the branch feature/payment, please to review",
    "the README is outdated",
]


@pytest.mark.parametrize("text", TASK_TALK)
def test_task_talk_and_pasted_output_are_not_facts(text: str) -> None:
    assert _one([_user(text)]) == []


@pytest.mark.parametrize(
    ("text", "fact"),
    [
        ("no emojis. ever. in anything you write", "No emojis, ever. In anything you write."),
        (
            "the api is since last week on port 8443 with tls",
            "The api is on port 8443 with tls.",
        ),
        ("in the api repo we're on node 20", "In the api repo, we're on node 20."),
        ("our migrations are always reversible btw", "Our migrations are always reversible."),
        (
            "dont add new env vars without adding them to .env.example",
            "Dont add new env vars without adding them to .env.example.",
        ),
        (
            "after changing a route run make openapi and commit the yaml",
            "After changing a route run make openapi and commit the yaml.",
        ),
        ("the package manager is pnpm", "The package manager is pnpm."),
        ("src/legacy is excluded from strict mode", "src/legacy is excluded from strict mode."),
        ("we never deploy on fridays", "We never deploy on fridays."),
        ("we don't deploy on fridays. monday then", "We don't deploy on fridays."),
        (
            "sounds good. one thing that's not negotiable: amounts are always Decimal, never"
            " float, anywhere in the tax code",
            "Amounts are always Decimal, never float, anywhere in the tax code.",
        ),
        (
            "the import runs nightly at 02:00 from the cron container btw, so it's not urgent",
            "The import runs nightly at 02:00 from the cron container.",
        ),
        (
            "we pin weasyprint to an exact version in pyproject, leave that pin alone",
            "We pin weasyprint to an exact version in pyproject.",
        ),
        ("the db has to be postgres 15", "The db has to be postgres 15."),
        (
            "we decided to not cache prices, because they change often and a stale price once"
            " cost us a very unpleasant incident with a customer",
            "We decided to not cache prices, because they change often.",
        ),
    ],
)
def test_plainly_stated_rules(text: str, fact: str) -> None:
    assert [f.text for f in _one([_user(text)])] == [fact]


@pytest.mark.parametrize(
    ("text", "fact"),
    [
        ("ok that settles it. we stay on celery", "We stay on celery."),
        ("we moved to postgres 16 last month", "We moved to postgres 16."),
        (
            "1 yes. 2 no, we don't put money amounts in redis, ever. 3 maybe later",
            "We don't put money amounts in redis, ever.",
        ),
        (
            "freeze time. we already use freezegun everywhere else",
            "We already use freezegun everywhere else.",
        ),
    ],
)
def test_where_a_debate_or_a_proposal_ended(text: str, fact: str) -> None:
    assert [f.text for f in _one([_user(text)])] == [fact]


def test_a_consequence_of_a_kept_fact_is_not_a_second_fact() -> None:
    facts = _one(
        [_user("One more thing: our IDs are ULIDs, not integers, so please don't use int")]
    )
    assert [f.text for f in facts] == ["Our IDs are ULIDs, not integers."]


def test_a_rule_about_the_sentence_before_joins_it() -> None:
    text = "the api docs are generated from openapi.yaml. never edit them by hand, ok?"
    assert [f.text for f in _one([_user(text)])] == [
        "The api docs are generated from openapi.yaml; never edit them by hand."
    ]
    # a caution for the task at hand is not such a rule
    text = "in the api repo we're on node 20. dont mix them up when you write the ci files"
    assert [f.text for f in _one([_user(text)])] == ["In the api repo, we're on node 20."]


def test_a_restated_fact_is_one_fact() -> None:
    turns = [_user("the api is on port 8080"), _user("remember the api is on 8080")]
    assert [f.text for f in _one(turns)] == ["The api is on port 8080."]
    # the fuller restatement wins; a prohibition never swallows its opposite
    turns = [_user("the db is on 5433"), _user("yes db on 5433 not 5432")]
    assert [f.text for f in _one(turns)] == ["Db on 5433 not 5432."]
    turns = [_user("always use npm ci in docker"), _user("never use npm ci in docker")]
    assert len(_one(turns)) == 2


def test_a_symptom_with_its_remedy_is_a_gotcha() -> None:
    text = "test_order_expiry is flaky because it depends on the wall clock; freeze time"
    assert _one([_user(text)]) != []
    text = (
        "Firmware updates go through MCUboot; images must be signed with the key in keys/"
        " (`west sign`), unsigned images are rejected."
    )
    assert _one([_user(text)]) != []


@pytest.mark.parametrize(
    "text",
    [
        "so we use postgres here right",
        "ok and the tests use sqlite i guess",
        "we deploy with helm i think",
        "the api is on port 8080, right",
    ],
)
def test_a_statement_asking_for_confirmation_is_not_a_fact(text: str) -> None:
    assert _one([_user(text)]) == []


def test_a_rhetorical_tag_and_a_place_called_right_stay() -> None:
    text = "we don't bump versions in feature branches, do we? release-please does that"
    assert _one([_user(text)]) != []
    # with its "?" the tag is a correction phrased as a question
    text = "isn't that wrong? the api is on port 8080, right?"
    assert [f.text for f in _one([_user(text)])] == ["The api is on port 8080."]
    text = "the sidebar is always on the right"
    assert [f.text for f in _one([_user(text)])] == ["The sidebar is always on the right."]


# Session 5: cases from bench/data/analyzer_quality's new-tune voices (notebooks, incident
# timelines, a junior developer, pasted documents, hypotheticals) and probes written for
# the rules; nothing from new-check.


def test_a_pasted_document_is_not_the_users_word() -> None:
    text = (
        "here's the upstream library's README section, for reference:\n"
        "## Configuration\n"
        "Set GEOCODER_TIMEOUT (default 10s). We recommend always using the batch endpoint.\n"
        "Never call geocode() in a tight loop."
    )
    assert _one([_user(text)]) == []
    text = (
        "the agent in the other session wrote this plan:\n"
        "1. Migrate the tile cache to Redis.\n"
        "2. Always invalidate on write.\n"
        "I don't agree with 2. we never invalidate tiles, they are immutable"
    )
    assert [f.text for f in _one([_user(text)])] == [
        "We never invalidate tiles, they are immutable."
    ]
    # the user's own list under a header is still theirs
    text = "a few rules for this repo:\n- always use pnpm\n- never push to main"
    assert [f.text for f in _one([_user(text)])] == ["Always use pnpm.", "Never push to main."]


@pytest.mark.parametrize(
    "text",
    [
        "if we ever move to k8s we'd use helm",
        "suppose we always ran the tests in docker, would that be slower",
        "eventually the frontend will use vite",
        "we used to use jenkins",
        "their repo uses bazel",
        "the upstream library requires python 3.8",
        "yeah great, the ci is always green, totally",
        "we always forget to bump the version",
        "we never finished the migration to typescript",
        "ok so the plan: we use redis for the queue and postgres for the rest",
        "the priority is the billing page, then search",
        "mark said we should just move everything to envoy",
    ],
)
def test_conditions_futures_others_and_sarcasm_are_not_facts(text: str) -> None:
    assert _one([_user(text)]) == []


@pytest.mark.parametrize(
    ("text", "fact"),
    [
        (
            "and the train/test split is by customer_id, never by row, otherwise leakage",
            "The train/test split is by customer_id, never by row, otherwise leakage.",
        ),
        (
            "also for plots in this repo we use plotly, not seaborn",
            "For plots in this repo, we use plotly, not seaborn.",
        ),
        (
            "my lead said we should never commit directly to develop",
            "We should never commit directly to develop.",
        ),
        (
            "thanks!! also I was told form validation here is always done with zod schemas in"
            " src/schemas, not inline",
            "Form validation here is always done with zod schemas in src/schemas, not inline.",
        ),
        ("migrations must always be reversible", "Migrations must always be reversible."),
        (
            "the apps should always go through sentinel and never hardcode a redis host",
            "The apps should always go through sentinel and never hardcode a redis host.",
        ),
        (
            "good. add to action items: every deploy to payments needs a canary of at least 30"
            " minutes. that's our policy from now on",
            "Every deploy to payments needs a canary of at least 30 minutes.",
        ),
        (
            "yeah. tests in this repo must be deterministic: no network, no wall clock",
            "Tests in this repo must be deterministic: no network, no wall clock.",
        ),
        ("our docs are built with mkdocs", "Our docs are built with mkdocs."),
        ("don't add dependencies without asking", "Don't add dependencies without asking."),
    ],
)
def test_rules_in_new_voices(text: str, fact: str) -> None:
    assert [f.text for f in _one([_user(text)])] == [fact]


def test_a_topic_is_not_a_time() -> None:
    assert _one([_user("for now we use sqlite")]) == []
    assert _one([_user("for this sprint we use the old api")]) == []


@pytest.mark.parametrize(
    "text",
    [
        "the linter is always complaining about line length",
        "the api is always slow on mondays",
        "the tutorial uses sqlite but we don't",
    ],
)
def test_complaints_and_other_peoples_examples_are_not_facts(text: str) -> None:
    assert _one([_user(text)]) == []


@pytest.mark.parametrize(
    "text",
    [
        "for today, don't run the e2e suite, the runner is down",
        "this afternoon, never push to main, we're cutting the release",
        "just for this demo, always use the mock payment provider",
        "until I say otherwise, never write to the prod database",
        "during the freeze, never merge anything without my ok",
        "today only: never restart the workers",
        "for the hackathon we use sqlite, it's quicker",
        "for this migration only, we use a 10 minute statement timeout",
        "the intern thinks we should always write docstrings",
        "a user on the forum says you should always pin numpy below 2",
        "always reproducible with the demo account, never with mine",
    ],
)
def test_a_rule_for_a_while_or_someone_elses_advice_is_not_a_fact(text: str) -> None:
    assert _one([_user(text)]) == []


@pytest.mark.parametrize(
    ("text", "fact"),
    [
        ("prices are stored net, that's the rule", "Prices are stored net."),
        (
            "ack after processing is the rule from now on, at-least-once delivery",
            "Ack after processing.",
        ),
        (
            "right. we require urllib3 2.x, that's in our pyproject and it stays that way",
            "We require urllib3 2.x.",
        ),
        ("the node version stays pinned at 20.11", "The node version stays pinned at 20.11."),
    ],
)
def test_a_rule_said_in_one_sentence_and_what_stays(text: str, fact: str) -> None:
    assert [f.text for f in _one([_user(text)])] == [fact]


@pytest.mark.parametrize(
    ("text", "fact"),
    [
        (
            "leave flaky tests quarantined. we don't delete tests",
            "Leave flaky tests quarantined; we don't delete tests.",
        ),
        ("bullet points pls. no paragraphs", "Bullet points; no paragraphs."),
        (
            "we only deploy from tags. leave main alone",
            "We only deploy from tags; leave main alone.",
        ),
        (
            "Please avoid new environment variables. We only configure through settings files.",
            "Avoid new environment variables; we only configure through settings files.",
        ),
        (
            "don't we pin every dependency with a hash? requirements.txt is generated",
            "We pin every dependency with a hash; requirements.txt is generated.",
        ),
        # a pronoun in the question refers to what the fact names, so the fact goes first
        (
            "aren't we moving them all to pathlib now? os.path is legacy",
            "os.path is legacy; we're moving them all to pathlib.",
        ),
    ],
)
def test_a_thin_fact_carries_the_instruction_next_to_it(text: str, fact: str) -> None:
    assert [f.text for f in _one([_user(text)])] == [fact]


@pytest.mark.parametrize(
    ("text", "fact"),
    [
        ("thanks. we use pnpm", "We use pnpm."),  # chatter
        ("can you check the logs? the api runs on 8080", "The api runs on 8080."),
        ("leave warnings. we use pnpm", "We use pnpm."),  # a whole fact stands alone
        ("fix the build. we only block on errors", "We only block on errors."),  # a task
        ("why is this failing? we only block on errors", "We only block on errors."),
        ("aren't you done yet? app.js is legacy", "app.js is legacy."),
        ("for today, leave warnings. we only block on errors", "We only block on errors."),
        ("don't we have a standup at 10? we squash on merge", "We squash on merge."),
        ("we only block on errors. leave it", "We only block on errors."),
        ("keep it that way. app.js is legacy", "app.js is legacy."),
        ("don't worry. we only block on errors", "We only block on errors."),
    ],
)
def test_a_thin_fact_stays_alone_next_to_chatter_tasks_and_questions(text: str, fact: str) -> None:
    assert [f.text for f in _one([_user(text)])] == [fact]


# Session 7: probes written for the rules that the set written by other people
# (bench/data/analyzer_quality, new3-tune) asked for; nothing from new3-check.


@pytest.mark.parametrize(
    ("text", "fact"),
    [
        # the next sentence finishes the rule: one memory, not its first half
        (
            "we never hardcode timeouts in this service. there's config/timeouts.py with all"
            " of them and you import them from there",
            "We never hardcode timeouts in this service. There's config/timeouts.py with all"
            " of them and you import them from there.",
        ),
        # an order for today after the rule stays out of it
        (
            "we require urllib3 2.x. close it with a pointer to the changelog",
            "We require urllib3 2.x.",
        ),
        ("we don't deploy on fridays. monday then", "We don't deploy on fridays."),
        # an aside after a request is still the project's fact
        (
            "fix the flaky test pls. btw the ci runner is on python 3.12",
            "The ci runner is on python 3.12.",
        ),
        # "always" / ", ever" where the cue-word rules do not look
        (
            "pytest-xdist, always, we never run the suite serially in this repo",
            "pytest-xdist, always, we never run the suite serially in this repo.",
        ),
        ("no raw card numbers in any log line, ever", "No raw card numbers in any log line, ever."),
        # a pronoun start is validation's call: "this repo" names the project
        (
            "this repo always uses tabs for indentation",
            "This repo always uses tabs for indentation.",
        ),
    ],
)
def test_a_rule_is_kept_whole_wherever_its_cue_stands(text: str, fact: str) -> None:
    assert [f.text for f in _one([_user(text)])] == [fact]


@pytest.mark.parametrize(
    "text",
    [
        # a description after a request for work describes the work
        "can you add a retry to the uploader. the uploader lives in sync/upload.py",
        "need a dark mode toggle on the settings page. settings live in ui/settings.tsx",
        # "always" in a pronoun's sentence, a report, a behaviour, a code comment, a retort
        "It has always been mysql.",
        "our cto friend said we should always use uuids for keys",
        "# always retry on 503",
        "Always reproducible on the staging build, never locally",
        "because deploying on a friday evening is always a great idea",
        # a clause whose verb is in the clause before it
        "the widgets only read semantic tokens, never palette ones directly",
        # today's state, leave for the task, a hedge after the comma
        "the queue on redis-2 is backed up since noon",
        "payments.py go ahead",
        "pricing is 12 euros a seat, might change",
    ],
)
def test_task_context_reports_and_fragments_are_not_facts(text: str) -> None:
    assert [f.text for f in _one([_user(text)])] == []
