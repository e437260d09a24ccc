import assert from "node:assert/strict";
import { describe as group, test } from "node:test";

import {
  currentStep,
  planNow,
  planView,
  PlanError,
  pricesOnSteps,
  stepTimes,
  visibleRange,
  type PlanView,
} from "../src/plan/model.ts";
// The planner's answer for the s7 scenario (tests/frontend/plan_response.py writes it).
import response from "./fixtures/get_plan_response.json" with { type: "json" };

const START = Date.parse("2025-06-16T00:00:00+02:00") / 1000;
const QUARTER = 15 * 60;

function view(): PlanView {
  const made = planView(response);
  assert.ok(made);
  return made;
}

group("the plan on a time axis", () => {
  test("step boundaries: one more time than steps, a step apart", () => {
    assert.deepEqual(stepTimes(100, 15, 3), [100, 1000, 1900, 2800]);
  });

  test("the planner's response laid out on the plan's 192 quarter-hours", () => {
    const plan = view();
    assert.equal(plan.siteId, "demo_home");
    assert.equal(plan.currency, "EUR");
    assert.equal(plan.status, "optimal");
    assert.equal(plan.stepSeconds, QUARTER);
    assert.equal(plan.times.length, 193);
    assert.equal(plan.times[0], START);
    assert.equal(plan.times[192], START + 48 * 3600);
    for (const series of [plan.importPrice, plan.exportPrice, plan.batteryW]) {
      assert.equal(series.length, 193);
      assert.equal(series[192], series[191], "held over the last step");
    }
    assert.equal(plan.importPrice[0], response.prices.import[0]);
    assert.equal(plan.exportPrice[5], response.prices.export[5]);
  });

  test("battery power with the site's sign: discharge positive, charge negative", () => {
    const plan = view();
    const [battery] = response.plan.batteries;
    assert.ok(battery);
    for (let i = 0; i < 192; i += 1) {
      const expected = battery.discharge_w[i]! - battery.charge_w[i]!;
      assert.ok(Math.abs(plan.batteryW[i]! - expected) < 0.06, `step ${i}`);
    }
    assert.ok(
      plan.batteryW.some((w) => w! < -1000),
      "the plan charges somewhere",
    );
    assert.ok(
      plan.batteryW.some((w) => w! > 1000),
      "and discharges somewhere",
    );
  });

  test("state of charge in %, known at the end of each step", () => {
    const plan = view();
    const [soc] = plan.soc;
    assert.ok(soc);
    assert.equal(soc.pct.length, 193);
    assert.equal(soc.pct[0], null);
    assert.ok(Math.abs(soc.pct[1]! - response.plan.batteries[0]!.soc[0]! * 100) < 1e-9);
    assert.ok(soc.pct.slice(1).every((pct) => pct! >= 0 && pct! <= 100));
  });

  test("hourly prices under a quarter-hour plan: each step takes its hour's price", () => {
    const times = stepTimes(START, 15, 8);
    assert.deepEqual(pricesOnSteps([1, 2], START, 3600, times), [1, 1, 1, 1, 2, 2, 2, 2]);
    // Prices that start late, end early or have gaps leave steps without one.
    assert.deepEqual(pricesOnSteps([5, null], START + 1800, 1800, times), [
      null,
      null,
      5,
      5,
      null,
      null,
      null,
      null,
    ]);
  });

  test("the current step, and nothing before or after the plan", () => {
    const plan = view();
    assert.equal(currentStep(plan, START), 0);
    assert.equal(currentStep(plan, START + QUARTER - 1), 0);
    assert.equal(currentStep(plan, START + 10 * QUARTER + 5), 10);
    assert.equal(currentStep(plan, START + 192 * QUARTER - 1), 191);
    assert.equal(currentStep(plan, START - 1), -1);
    assert.equal(currentStep(plan, START + 192 * QUARTER), -1);
  });

  test("what is shown: an hour before the current step, then the hours asked", () => {
    const plan = view();
    assert.deepEqual(visibleRange(plan, START - 60), [0, 192]);
    assert.deepEqual(visibleRange(plan, START + 2 * QUARTER), [0, 192], "no hour before the start");
    assert.deepEqual(visibleRange(plan, START + 10 * QUARTER + 5), [6, 192]);
    assert.deepEqual(visibleRange(plan, START + 10 * QUARTER + 5, 6), [6, 34]);
    assert.deepEqual(visibleRange(plan, START + 190 * QUARTER, 6), [186, 192]);
    assert.deepEqual(
      visibleRange(plan, START + 200 * QUARTER, 6),
      [0, 24],
      "an ended plan from its start",
    );
  });

  test("now in numbers: the step's prices and battery power, the state of charge next and at the end", () => {
    const plan = view();
    const now = planNow(plan, START + 9 * QUARTER + 60);
    assert.ok(now);
    assert.equal(now.step, 9);
    assert.equal(now.importPrice, response.prices.import[9]);
    assert.equal(now.batteryW, plan.batteryW[9]);
    assert.equal(now.socNext, plan.soc[0]!.pct[10]);
    assert.equal(now.socEnd, plan.soc[0]!.pct[192]);
    assert.equal(planNow(plan, START - 1), null);
  });
});

group("no plan, and answers that are not a plan", () => {
  test("no response or no plan in it: no plan yet", () => {
    assert.equal(planView(undefined), null);
    assert.equal(planView(null), null);
    assert.equal(planView({ site_id: "x", plan: null, prices: null }), null);
    assert.equal(planView({}), null);
  });

  test("a plan without prices still shows its power and charge", () => {
    const plan = planView({ ...response, prices: null });
    assert.ok(plan);
    assert.ok(plan.importPrice.every((price) => price === null));
    assert.equal(plan.currency, "EUR", "the plan's own currency");
  });

  test("a malformed plan says what is wrong", () => {
    const broken = (plan: Record<string, unknown>) => ({
      ...response,
      plan: { ...response.plan, ...plan },
    });
    assert.throws(() => planView(broken({ n_steps: 0 })), PlanError);
    assert.throws(() => planView(broken({ start: "yesterday" })), /the plan's start is not a time/);
    assert.throws(
      () =>
        planView(broken({ batteries: [{ id: "b", charge_w: [1], discharge_w: [1], soc: [0] }] })),
      /battery b: charge_w needs 192 values/,
    );
    assert.throws(() => planView({ ...response, plan: "soon" }), /not an object/);
  });
});
