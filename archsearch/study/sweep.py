"""The sweep planner: a sweep's grid points (:class:`~.config.Point`, :class:`~.config.SweepPlan`), each design
solved onto the budget (nothing is built).

The plan is made once, when the study is loaded (:func:`archsearch.study.load_study` checks the claims against
its points), and carried by the :class:`~archsearch.study.config.Study` to the runner, its workers and Ray trials.
"""

from __future__ import annotations

from typing import Any

from ..errors import BudgetError, SpecError
from ..families import get_family
from ..solver import Solution, solve
from ..spec import GraphSpec
from .config import BudgetConfig, Point, StudyConfig, SweepPlan
from .space import Design, SearchSpace


def solve_design(budget_config: BudgetConfig | None, design: Design, arguments: dict[str, Any], *,
                 target_pct: float | None = None, via: str | None = None) -> Solution | GraphSpec:
    """The design's spec on the study's budget (a :class:`Solution`), or its spec as is without a budget."""
    fixed = {**design.fixed, **arguments}
    if budget_config is None:
        return get_family(design.family)(**fixed)
    budget = budget_config.budget()
    if target_pct is not None and via is not None:
        return solve(design.family, design.free_knob, budget, fixed, target_activation_pct=target_pct, via=via)
    return solve(design.family, design.free_knob, budget, fixed)


def plan_sweep(config: StudyConfig, space: SearchSpace) -> SweepPlan:
    """The sweep's points (every feasible design x value x seed) and the infeasible ones with reasons."""
    sw = config.sweep
    if sw is None:
        raise ValueError("plan_sweep: the study has no sweep (a search is planned by its sampler)")
    cells: list[tuple[Design, dict[str, Any], Any, str]] = []  # design, arguments, sweep value, label
    infeasible: list[dict[str, Any]] = []
    seen: dict[str, str] = {}

    def add(design: Design, args: dict[str, Any], value: Any, sol) -> None:
        spec = sol.spec if isinstance(sol, Solution) else sol
        label = design.name + "".join(f" {k}={v}" for k, v in args.items())
        # one architecture is one point, unless its weights differ: each published checkpoint is its own model
        key = f"{spec.hash} {design.name}" if design.published else spec.hash
        if key in seen:
            infeasible.append({"design": design.name, "sweep_value": value, "label": label,
                               "reason": f"same architecture as {seen[key]!r} (spec {spec.hash})"})
            return
        seen[key] = label
        cells.append((design, args, value, label))

    if sw.over == "activation_param_pct":
        for target in sw.values:
            best = None
            for design in space.designs:
                try:
                    if design.sweeps(sw.via):
                        sol = solve_design(config.budget, design, {}, target_pct=float(target), via=sw.via)
                        args = {sw.via: sol.arguments[sw.via]}
                    else:
                        sol, args = solve_design(config.budget, design, {}), {}
                except (BudgetError, SpecError) as err:
                    infeasible.append({"design": design.name, "sweep_value": target, "label": design.name,
                                       "reason": str(err)})
                    continue
                pct = sol.counts.activation_param_pct if isinstance(sol, Solution) else 0.0
                if best is None or abs(pct - target) < abs(best[3] - target):
                    best = (design, args, sol, pct)
            if best is None:
                continue
            if abs(best[3] - target) > sw.pct_tolerance:
                infeasible.append({"design": best[0].name, "sweep_value": target, "label": f"{target}%",
                                   "reason": f"closest activation share is {best[3]:.2f}% (tolerance "
                                             f"{sw.pct_tolerance} points)"})
                continue
            add(best[0], best[1], target, best[2])
    else:
        baselines_done: set[str] = set()
        for value in sw.values or (None,):  # `over: designs` has no values: each design once
            for design in space.designs:
                if design.sweeps(sw.over):
                    args = {sw.over: value}
                elif design.name in baselines_done:
                    continue
                else:
                    args = {}
                    baselines_done.add(design.name)
                try:
                    sol = solve_design(config.budget, design, args)
                except (BudgetError, SpecError) as err:
                    infeasible.append({"design": design.name, "sweep_value": value if args else None,
                                       "label": design.name + "".join(f" {k}={v}" for k, v in args.items()),
                                       "reason": str(err)})
                    continue
                add(design, args, value if args else None, sol)
    points = [Point(d.name, tuple(sorted(a.items())), seed, label, value)
              for d, a, value, label in cells for seed in config.seeds]
    return SweepPlan(tuple(points), tuple(infeasible))
