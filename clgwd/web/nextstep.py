"""The onboarding "next step", derived from live state and never stored.

The vendor shows one status line per gateway: the next thing to do ("Configure
gateway", "Add PBX", "Connect the PBX", "Deployment") or the problem. Storing a wizard
position would drift from reality (a PBX deleted, a link revoked); deriving it from
what the parts report cannot. ``None`` in a field means the owning part cannot tell
(not available in this build): the step then stops there and says so, never guesses.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class Step(StrEnum):
    CONFIGURE_GATEWAY = "Configure gateway"
    ADD_PBX = "Add PBX"
    CONNECT_PBX = "Connect the PBX"
    DEPLOYMENT = "Deployment"
    COMPLETE = "Onboarding complete"


@dataclass(frozen=True)
class OnboardingState:
    site_configured: bool
    cloud_enrolled: bool | None
    cloud_connected: bool | None
    pbx_configured: bool | None
    pbx_connected: bool | None
    last_sync_ok: bool | None
    synced_users: int | None
    critical_alerts: tuple[str, ...] = ()
    sync_held_back: int = 0
    """Users a sync safety abort held back, waiting for the technician's decision."""


@dataclass(frozen=True)
class NextStep:
    step: Step
    page: str
    message: str
    problem: bool = False

    def as_json(self) -> dict[str, object]:
        return {"step": self.step.value, "page": self.page, "message": self.message,
                "problem": self.problem}


_UNAVAILABLE = "{what} is not available in this gateway version yet"


def next_step(state: OnboardingState) -> NextStep:
    """The first unmet onboarding condition, or a problem that blocks the rest."""
    if state.sync_held_back:
        # Every sync stops until someone decides, and the decision is on the Connect step.
        return NextStep(Step.CONNECT_PBX, "connect",
                        f"The sync is stopped: {state.sync_held_back} synced users are "
                        "missing from the PBX. On the Connect step, keep them or delete "
                        "them once.", problem=True)
    if state.critical_alerts:
        step = _progress(state)
        return NextStep(step.step, step.page, state.critical_alerts[0], problem=True)
    return _progress(state)


def _progress(state: OnboardingState) -> NextStep:
    for check in (_gateway, _pbx, _connect, _deployment):
        found = check(state)
        if found is not None:
            return found
    return NextStep(Step.COMPLETE, "overview", "The gateway is onboarded and syncing.")


def _gateway(state: OnboardingState) -> NextStep | None:
    if not state.site_configured:
        return NextStep(Step.CONFIGURE_GATEWAY, "gateway", "Enter the site information.")
    if state.cloud_enrolled is None:
        return NextStep(Step.CONFIGURE_GATEWAY, "cloud",
                        _UNAVAILABLE.format(what="Cloud enrollment"), problem=True)
    if not state.cloud_enrolled:
        return NextStep(Step.CONFIGURE_GATEWAY, "cloud",
                        "Enroll the gateway: enter the cloud address, the Account ID and "
                        "the enrollment token.")
    return None


def _pbx(state: OnboardingState) -> NextStep | None:
    if state.pbx_configured is None:
        return NextStep(Step.ADD_PBX, "pbx", _UNAVAILABLE.format(what="PBX configuration"),
                        problem=True)
    if not state.pbx_configured:
        return NextStep(Step.ADD_PBX, "pbx", "Enter the PBX type, address and credentials.")
    return None


def _connect(state: OnboardingState) -> NextStep | None:
    if state.pbx_connected is None:
        return NextStep(Step.CONNECT_PBX, "connect",
                        _UNAVAILABLE.format(what="The PBX connection test"), problem=True)
    if not state.pbx_connected:
        return NextStep(Step.CONNECT_PBX, "connect",
                        "Test the connection to the PBX, then sync.")
    return None


def _deployment(state: OnboardingState) -> NextStep | None:
    if state.last_sync_ok is None or state.synced_users is None:
        return NextStep(Step.DEPLOYMENT, "connect", _UNAVAILABLE.format(what="PBX sync"),
                        problem=True)
    if not state.last_sync_ok:
        return NextStep(Step.DEPLOYMENT, "connect",
                        "The last sync failed; fix the PBX and press Sync now.", problem=True)
    if state.synced_users == 0:
        return NextStep(Step.DEPLOYMENT, "connect", "No users were synced from the PBX yet.")
    if state.cloud_connected is None or not state.cloud_connected:
        return NextStep(Step.DEPLOYMENT, "cloud",
                        "Waiting for the cloud link to deliver the synced users.",
                        problem=state.cloud_connected is not None)
    return None


class StepState(StrEnum):
    """What the page's stepper shows for one step (in words, not by colour alone)."""

    DONE = "done"
    NEXT = "next"
    ATTENTION = "attention"
    TODO = "todo"
    OPTIONAL = "optional"


STEPPER: tuple[str, ...] = ("gateway", "cloud", "pbx", "connect", "deployment", "advanced",
                            "overview")
"""The stepper's pages, in the vendor's order (Cloud is ours: the vendor enrolls from its
portal); Advanced and Overview are never required."""

_STEP_PAGE = {Step.CONFIGURE_GATEWAY: "gateway", Step.ADD_PBX: "pbx",
              Step.CONNECT_PBX: "connect", Step.DEPLOYMENT: "deployment"}


def step_states(state: OnboardingState) -> dict[str, StepState]:
    """Each stepper page's state: the step ``next_step`` stops at is NEXT (ATTENTION when
    it is a problem; Overview when onboarding is complete but a critical alert is
    active); the others are DONE when their own condition holds, else TODO.
    The blocking step is the page ``next_step`` sends the technician to (the Cloud page
    for enrollment, Connect for a failing sync, Deployment while the link delivers)."""
    done = {
        "gateway": state.site_configured,
        "cloud": bool(state.cloud_enrolled),
        "pbx": bool(state.pbx_configured),
        "connect": bool(state.pbx_connected) and bool(state.last_sync_ok)
        and bool(state.synced_users),
        "deployment": False,
    }
    found = next_step(state)
    states = {page: StepState.DONE if ok else StepState.TODO for page, ok in done.items()}
    optional = {"advanced": StepState.OPTIONAL, "overview": StepState.OPTIONAL}
    if found.step is Step.COMPLETE:
        states = dict.fromkeys(done, StepState.DONE)
        if found.problem:  # a critical alert after onboarding: the Overview lists it
            optional["overview"] = StepState.ATTENTION
    else:
        blocking = found.page if found.page in done else _STEP_PAGE[found.step]
        if found.step is Step.DEPLOYMENT and found.page == "cloud":
            blocking = "deployment"  # everything is set; the link has to deliver
        states[blocking] = StepState.ATTENTION if found.problem else StepState.NEXT
    return {**states, **optional}
