"""The planner: prices, tariffs, forecasts and baseline in; a HiGHS plan that is never
infeasible out; planned against actual afterwards."""
