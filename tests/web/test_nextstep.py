"""The next step is derived from state: every combination that matters."""

from __future__ import annotations

import dataclasses

import pytest
from hypothesis import given
from hypothesis import strategies as st

from clgwd.web.nextstep import (
    STEPPER,
    NextStep,
    OnboardingState,
    Step,
    StepState,
    next_step,
    step_states,
)

DONE = OnboardingState(site_configured=True, cloud_enrolled=True, cloud_connected=True,
                       pbx_configured=True, pbx_connected=True, last_sync_ok=True,
                       synced_users=12)


def _with(**changes: object) -> NextStep:
    return next_step(dataclasses.replace(DONE, **changes))  # type: ignore[arg-type]


def test_everything_done_is_onboarding_complete() -> None:
    result = next_step(DONE)
    assert result.step == Step.COMPLETE and not result.problem


@pytest.mark.parametrize(("changes", "step", "page", "problem"), [
    ({"site_configured": False}, Step.CONFIGURE_GATEWAY, "gateway", False),
    ({"cloud_enrolled": False}, Step.CONFIGURE_GATEWAY, "cloud", False),
    ({"cloud_enrolled": None}, Step.CONFIGURE_GATEWAY, "cloud", True),
    ({"pbx_configured": False}, Step.ADD_PBX, "pbx", False),
    ({"pbx_configured": None}, Step.ADD_PBX, "pbx", True),
    ({"pbx_connected": False}, Step.CONNECT_PBX, "connect", False),
    ({"pbx_connected": None}, Step.CONNECT_PBX, "connect", True),
    ({"last_sync_ok": False}, Step.DEPLOYMENT, "connect", True),
    ({"last_sync_ok": None}, Step.DEPLOYMENT, "connect", True),
    ({"synced_users": 0}, Step.DEPLOYMENT, "connect", False),
    ({"synced_users": None}, Step.DEPLOYMENT, "connect", True),
    ({"cloud_connected": False}, Step.DEPLOYMENT, "cloud", True),
    ({"cloud_connected": None}, Step.DEPLOYMENT, "cloud", False),
])
def test_first_unmet_condition_wins(changes: dict[str, object], step: Step, page: str,
                                    problem: bool) -> None:
    result = _with(**changes)
    assert (result.step, result.page, result.problem) == (step, page, problem)


def test_earlier_steps_take_precedence() -> None:
    """A fresh gateway whose other parts are missing still starts at the site."""
    fresh = OnboardingState(site_configured=False, cloud_enrolled=None, cloud_connected=None,
                            pbx_configured=None, pbx_connected=None, last_sync_ok=None,
                            synced_users=None)
    assert next_step(fresh).step == Step.CONFIGURE_GATEWAY
    assert next_step(fresh).page == "gateway"
    assert _with(cloud_enrolled=False, pbx_configured=False).step == Step.CONFIGURE_GATEWAY
    assert _with(pbx_configured=False, pbx_connected=False).step == Step.ADD_PBX


def test_critical_alert_is_the_problem_shown_at_the_current_step() -> None:
    result = _with(pbx_connected=False, critical_alerts=("PBX unreachable",))
    assert result.step == Step.CONNECT_PBX
    assert result.problem and result.message == "PBX unreachable"
    assert _with(critical_alerts=("disk full",)).as_json() == {
        "step": "Onboarding complete", "page": "overview", "message": "disk full",
        "problem": True}


def test_unavailable_part_is_named_not_guessed() -> None:
    assert "not available" in _with(pbx_configured=None).message


_TRI = st.sampled_from([True, False, None])


@given(st.builds(OnboardingState, site_configured=st.booleans(), cloud_enrolled=_TRI,
                 cloud_connected=_TRI, pbx_configured=_TRI, pbx_connected=_TRI,
                 last_sync_ok=_TRI, synced_users=st.one_of(st.none(), st.integers(0, 5)),
                 critical_alerts=st.lists(st.text(min_size=1), max_size=2).map(tuple)))
def test_complete_exactly_when_everything_is_true(state: OnboardingState) -> None:
    """Never "complete" with any unmet or unknown input; a problem always has a message."""
    result = next_step(state)
    all_done = (state.site_configured and state.cloud_enrolled is True
                and state.cloud_connected is True and state.pbx_configured is True
                and state.pbx_connected is True and state.last_sync_ok is True
                and bool(state.synced_users))
    assert (result.step == Step.COMPLETE) == all_done
    assert result.message
    if state.critical_alerts:
        assert result.problem and result.message == state.critical_alerts[0]


def _steps(**changes: object) -> dict[str, str]:
    state = dataclasses.replace(DONE, **changes)  # type: ignore[arg-type]
    return {page: value.value for page, value in step_states(state).items()}


def test_stepper_all_done_when_onboarding_is_complete() -> None:
    """Every required step is done; Advanced and Overview are optional."""
    assert _steps() == {"gateway": "done", "cloud": "done", "pbx": "done", "connect": "done",
                        "deployment": "done", "advanced": "optional", "overview": "optional"}


def test_stepper_fresh_gateway_points_at_the_gateway_step() -> None:
    """Nothing done: Gateway is next, every other required step is still to do."""
    steps = _steps(site_configured=False, cloud_enrolled=False, cloud_connected=False,
                   pbx_configured=False, pbx_connected=False, last_sync_ok=False,
                   synced_users=0)
    assert steps["gateway"] == "next"
    assert [steps[p] for p in STEPPER[1:5]] == ["todo"] * 4


def test_stepper_keeps_later_steps_done_out_of_order() -> None:
    """A PBX saved before the gateway was enrolled stays done; Cloud is next."""
    steps = _steps(cloud_enrolled=False, cloud_connected=False)
    assert (steps["gateway"], steps["cloud"], steps["pbx"]) == ("done", "next", "done")
    assert steps["deployment"] == "todo"


@pytest.mark.parametrize(("changes", "page"), [
    ({"last_sync_ok": False}, "connect"),
    ({"cloud_connected": False}, "deployment"),
    ({"cloud_enrolled": None}, "cloud"),
    ({"critical_alerts": ("The PBX did not answer",)}, "overview"),
    ({"critical_alerts": ("Disk full",), "pbx_configured": False}, "pbx"),
])
def test_stepper_marks_the_problem_step_as_needing_attention(changes: dict[str, object],
                                                              page: str) -> None:
    """The step the next-step card names as a problem needs attention; it alone."""
    steps = _steps(**changes)
    assert steps[page] == "attention"
    assert list(steps.values()).count("attention") == 1


@given(st.builds(OnboardingState, site_configured=st.booleans(),
                 cloud_enrolled=st.none() | st.booleans(),
                 cloud_connected=st.none() | st.booleans(),
                 pbx_configured=st.none() | st.booleans(),
                 pbx_connected=st.none() | st.booleans(),
                 last_sync_ok=st.none() | st.booleans(),
                 synced_users=st.none() | st.integers(0, 5),
                 critical_alerts=st.lists(st.text(min_size=1), max_size=1).map(tuple)))
def test_stepper_has_one_current_step_unless_complete(state: OnboardingState) -> None:
    """At most one step is next or needs attention, and none exactly when onboarding is
    complete without a critical alert; every stepper page has a state."""
    steps = step_states(state)
    assert set(steps) == set(STEPPER)
    current = [p for p, v in steps.items() if v in (StepState.NEXT, StepState.ATTENTION)]
    found = next_step(state)
    assert len(current) == (0 if found.step is Step.COMPLETE and not found.problem else 1)


def test_a_sync_safety_abort_names_the_connect_step() -> None:
    """Users held back by the safety rule: the problem is on Connect, whatever else."""
    state = OnboardingState(site_configured=True, cloud_enrolled=True, cloud_connected=True,
                            pbx_configured=True, pbx_connected=True, last_sync_ok=False,
                            synced_users=20, critical_alerts=("8 of 20 synced users ...",),
                            sync_held_back=8)
    step = next_step(state)
    assert (step.step, step.page, step.problem) == (Step.CONNECT_PBX, "connect", True)
    assert "8 synced users are missing" in step.message and "keep them" in step.message


@given(st.sampled_from([False, None]), st.booleans())
def test_no_next_step_tells_the_technician_to_edit_a_config_file(
        enrolled: bool | None, connected: bool) -> None:
    """Not enrolled (a stock appliance has no cloud address yet): the Cloud step is next
    and asks for the address, Account ID and token; no message points at a file."""
    state = dataclasses.replace(DONE, cloud_enrolled=enrolled, cloud_connected=connected)
    found = next_step(state)
    assert found.page == "cloud"
    assert "config" not in found.message.lower() and ".yaml" not in found.message
    if enrolled is False:
        assert "cloud address" in found.message
        assert step_states(state)["cloud"] is StepState.NEXT
