"""The rate-limit table in the code against Knock's own description of its API."""

from __future__ import annotations

import pytest

from tests.fakes.knock_spec import knock_spec, spec_missing_reason, tier_rates
from workbench.sinks.knock_tiers import ENDPOINTS, TIER_RATES, TIERS, Pace, rate


@pytest.fixture(scope="module")
def spec():
    reason = spec_missing_reason()
    if reason:
        pytest.skip(reason)
    return knock_spec()


def test_every_endpoint_has_the_tier_knock_gives_it(spec):
    for (method, template), tier in TIERS.items():
        assert spec.tier(method, template) == tier, f"{method} {template}"


def test_the_rates_are_knocks_table(spec):
    assert tier_rates() == TIER_RATES


def test_every_call_the_workbench_makes_is_in_the_table(spec):
    assert set(ENDPOINTS.values()) == set(TIERS)
    assert (
        rate("bulk:users_identify") == 1 and rate("users_delete") == 5 and rate("workflows_trigger") == 1000
    )


class Clock:
    def __init__(self):
        self.now = 100.0
        self.slept: list[float] = []

    def __call__(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.slept.append(round(seconds, 6))
        self.now += seconds


def test_each_endpoint_is_paced_by_its_own_tier():
    clock = Clock()
    pace = Pace(sleep=clock.sleep, clock=clock)
    for _ in range(3):
        pace.wait("bulk:users_identify")  # 1 a second
        pace.wait("users_delete")  # 5 a second, its own turn
    assert clock.slept == [1.0, 1.0]  # the deletes never wait: their turn comes 5 times a second
    pace.hold("workflows_trigger", 3.0)  # a 429's Retry-After
    assert pace.wait("workflows_trigger") == pytest.approx(3.0)


def test_a_scale_paces_faster():
    clock = Clock()
    pace = Pace(scale=100, sleep=clock.sleep, clock=clock)
    pace.wait("bulk:users_identify")
    pace.wait("bulk:users_identify")
    assert clock.slept == [0.01]
