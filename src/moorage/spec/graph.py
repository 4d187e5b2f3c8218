"""The dependency graph (``parents``) and deploy waves, turned into an execution plan.

Semantics (§2.6, §2.11): a resource starts once all its parents succeeded; a stack in wave N starts
once every stack in every lower wave finished; stacks without ``deploy_wave`` are outside the wave
ordering and start as soon as their own parents allow. Teardown is the exact reverse.
"""

from __future__ import annotations

import heapq
from collections.abc import Iterable
from dataclasses import dataclass, field

from moorage.spec.assembly import Assembly, Entry
from moorage.spec.hints import closest
from moorage.spec.validate import Context
from moorage.spec.yamlsafe import PathKey

KIND_ORDER = {"manifest": 0, "addon": 1, "application": 2}


@dataclass(frozen=True, order=True)
class ResourceRef:
    kind: str
    name: str

    def __str__(self) -> str:
        return f"{self.kind}/{self.name}"


@dataclass(frozen=True)
class Step:
    ref: ResourceRef
    stack: str
    wave: int | None
    parents: tuple[ResourceRef, ...]
    layer: int
    index: int  # declaration order, for deterministic ties


@dataclass
class PlanGroup:
    """One deploy wave (or, with ``wave`` None, every stack outside the wave ordering)."""

    wave: int | None
    stacks: list[str]
    layers: list[list[ResourceRef]]


@dataclass
class Plan:
    groups: list[PlanGroup] = field(default_factory=list)
    steps: dict[ResourceRef, Step] = field(default_factory=dict)
    order: list[ResourceRef] = field(default_factory=list)

    def dependencies(self, ref: ResourceRef) -> set[ResourceRef]:
        """Everything that must finish before ``ref`` starts: its parents and all lower waves."""
        step = self.steps[ref]
        deps = set(step.parents)
        if step.wave is not None:
            deps.update(r for r, s in self.steps.items() if s.wave is not None and s.wave < step.wave)
        return deps

    @property
    def teardown_order(self) -> list[ResourceRef]:
        return list(reversed(self.order))

    @property
    def teardown_groups(self) -> list[PlanGroup]:
        return [
            PlanGroup(g.wave, list(g.stacks), [list(layer) for layer in reversed(g.layers)])
            for g in reversed(self.groups)
        ]


AnyEntry = Entry  # Entry[Manifest] | Entry[Addon] | Entry[Application]


def _entries(asm: Assembly) -> Iterable[Entry]:  # type: ignore[type-arg]
    yield from asm.manifests
    yield from asm.addons
    yield from asm.applications
    yield from asm.partial


def build_plan(asm: Assembly, ctx: Context) -> Plan | None:
    """Check names, parents, cycles and waves; return the plan, or None if the graph is unusable."""
    nodes: dict[ResourceRef, Entry] = {}  # type: ignore[type-arg]
    decl: dict[ResourceRef, int] = {}
    ok = True
    for entry in _entries(asm):
        ref = ResourceRef(entry.kind, entry.name)
        if ref in nodes:
            first = ctx.where(nodes[ref].path)
            ctx.error(
                "duplicate-name",
                f'{entry.kind} "{entry.name}" is declared more than once (first at {first[1]}, {first[0]}); '
                "names must be unique per kind",
                (*entry.path, "name"),
            )
            ok = False
            continue
        nodes[ref] = entry
        decl[ref] = len(decl)
    stack_index = {stack.name: i for i, (stack, _, _) in enumerate(asm.stacks)}

    parents: dict[ResourceRef, list[ResourceRef]] = {}
    for ref, entry in nodes.items():
        plist: list[ResourceRef] = []
        model = entry.model
        field_name = (
            "dependencies_override"
            if getattr(model, "dependencies_override", None) is not None
            else "parents"
        )
        for index, parent in enumerate(model.effective_parents):
            pref = ResourceRef(parent.kind, parent.name)
            ppath: PathKey = (*entry.path, field_name, index)
            if pref not in nodes:
                ok = False
                same_kind = [r.name for r in nodes if r.kind == parent.kind]
                other = [r.kind for r in nodes if r.name == parent.name and r.kind != parent.kind]
                match = closest(parent.name, same_kind)
                hint = (
                    f"there is a {other[0]} named '{parent.name}'; use {{{other[0]}: {parent.name}}}"
                    if other
                    else (
                        f"did you mean '{match}'?"
                        if match
                        else f"define a {parent.kind} named '{parent.name}'"
                    )
                )
                ctx.error(
                    "parent-missing",
                    f"{entry.kind} '{entry.name}' has parent {parent.kind} '{parent.name}', "
                    "which is not defined",
                    ppath,
                    hint=hint,
                )
                continue
            if pref == ref:
                ok = False
                ctx.error(
                    "cycle",
                    f"dependency cycle detected: {ref} -> {ref}",
                    ppath,
                    hint="remove the self-reference",
                )
                continue
            child_wave = entry.stack.deploy_wave
            parent_wave = nodes[pref].stack.deploy_wave
            if child_wave is not None and parent_wave is not None and parent_wave > child_wave:
                ok = False
                ctx.error(
                    "wave-order",
                    f"{entry.kind} '{entry.name}' (wave {child_wave}) has parent {pref} in a later wave "
                    f"({parent_wave}); it could never start",
                    ppath,
                    hint="move the parent to an earlier wave or the child to a later one",
                )
                continue
            if pref not in plist:
                plist.append(pref)
        parents[ref] = plist

    if asm.partial:
        ok = False  # the broken entries are reported already; no plan, but every reference checked
    for cycle in _cycles(parents, decl):
        ok = False
        text = " -> ".join(str(r) for r in [*cycle, cycle[0]])
        ctx.error(
            "cycle",
            f"dependency cycle detected: {text}",
            (*nodes[cycle[0]].path, "parents"),
            hint="remove one of these parents",
        )
    if not ok:
        return None
    return _plan(asm, ctx, nodes, parents, decl, stack_index)


def _cycles(
    parents: dict[ResourceRef, list[ResourceRef]], decl: dict[ResourceRef, int]
) -> list[list[ResourceRef]]:
    """Every elementary cycle found by an iterative DFS (one report per strongly linked loop)."""
    color: dict[ResourceRef, int] = {}
    cycles: list[list[ResourceRef]] = []
    seen_sets: set[frozenset[ResourceRef]] = set()
    for start in sorted(parents, key=decl.__getitem__):
        if color.get(start):
            continue
        stack: list[tuple[ResourceRef, int]] = [(start, 0)]
        on_path: list[ResourceRef] = []
        color[start] = 1
        on_path.append(start)
        while stack:
            node, i = stack[-1]
            edges = parents.get(node, [])
            if i < len(edges):
                stack[-1] = (node, i + 1)
                nxt = edges[i]
                state = color.get(nxt, 0)
                if state == 0:
                    color[nxt] = 1
                    on_path.append(nxt)
                    stack.append((nxt, 0))
                elif state == 1:
                    cycle = on_path[on_path.index(nxt) :]
                    # Report the cycle in dependency order (child -> parent), starting at its earliest node.
                    key = frozenset(cycle)
                    if key not in seen_sets:
                        seen_sets.add(key)
                        first = min(range(len(cycle)), key=lambda k: decl[cycle[k]])
                        cycles.append(cycle[first:] + cycle[:first])
            else:
                color[node] = 2
                on_path.pop()
                stack.pop()
    return cycles


def _plan(
    asm: Assembly,
    ctx: Context,
    nodes: dict[ResourceRef, Entry],  # type: ignore[type-arg]
    parents: dict[ResourceRef, list[ResourceRef]],
    decl: dict[ResourceRef, int],
    stack_index: dict[str, int],
) -> Plan | None:
    waves = sorted({s.deploy_wave for s, _, _ in asm.stacks if s.deploy_wave is not None})
    group_keys: list[int | None] = [*waves, None]
    group_of = {w: i for i, w in enumerate(group_keys)}

    # Layers: longest path from a root, counting only parents in the same group.
    layer: dict[ResourceRef, int] = {}
    for ref in _topological(parents, decl):
        g = group_of[nodes[ref].stack.deploy_wave]
        same = [layer[p] for p in parents[ref] if group_of[nodes[p].stack.deploy_wave] == g]
        layer[ref] = 1 + max(same) if same else 0

    plan = Plan()
    for g, wave in enumerate(group_keys):
        stacks = [s.name for s, _, _ in asm.stacks if s.deploy_wave == wave]
        members = [r for r in nodes if group_of[nodes[r].stack.deploy_wave] == g]
        if not stacks:
            continue
        depth = max((layer[r] for r in members), default=-1) + 1
        layers: list[list[ResourceRef]] = [[] for _ in range(depth)]
        for ref in sorted(members, key=lambda r: (stack_index.get(nodes[r].stack.name, 0), decl[r])):
            layers[layer[ref]].append(ref)
        plan.groups.append(PlanGroup(wave, stacks, layers))
    for ref, entry in nodes.items():
        plan.steps[ref] = Step(
            ref, entry.stack.name, entry.stack.deploy_wave, tuple(parents[ref]), layer[ref], decl[ref]
        )

    # Linear order over parents plus wave barriers; a leftover means the two kinds of edge deadlock.
    order = _linearize(plan, group_of, decl)
    if len(order) != len(plan.steps):
        stuck = sorted((r for r in plan.steps if r not in set(order)), key=decl.__getitem__)
        ctx.error(
            "wave-deadlock",
            "deploy waves and parents wait on each other: " + ", ".join(str(r) for r in stuck[:6]),
            nodes[stuck[0]].path,
            hint="a stack without deploy_wave must not sit between two waves; give it a wave",
        )
        return None
    plan.order = order
    return plan


def _topological(
    parents: dict[ResourceRef, list[ResourceRef]], decl: dict[ResourceRef, int]
) -> list[ResourceRef]:
    indegree = {r: len(ps) for r, ps in parents.items()}
    children: dict[ResourceRef, list[ResourceRef]] = {r: [] for r in parents}
    for r, ps in parents.items():
        for p in ps:
            children[p].append(r)
    heap = [(decl[r], r) for r, d in indegree.items() if d == 0]
    heapq.heapify(heap)
    out: list[ResourceRef] = []
    while heap:
        _, r = heapq.heappop(heap)
        out.append(r)
        for c in children[r]:
            indegree[c] -= 1
            if indegree[c] == 0:
                heapq.heappush(heap, (decl[c], c))
    return out


def _linearize(
    plan: Plan, group_of: dict[int | None, int], decl: dict[ResourceRef, int]
) -> list[ResourceRef]:
    steps = plan.steps
    waved = sorted({s.wave for s in steps.values() if s.wave is not None})
    by_wave: dict[int, list[ResourceRef]] = {w: [] for w in waved}
    for ref, step in steps.items():
        if step.wave is not None:
            by_wave[step.wave].append(ref)
    # Virtual barrier nodes (one per wave) keep the edge count linear instead of quadratic.
    barriers = [ResourceRef("~barrier", str(w)) for w in waved]
    deps: dict[ResourceRef, set[ResourceRef]] = {}
    for ref, step in steps.items():
        d = set(step.parents)
        if step.wave is not None:
            pos = waved.index(step.wave)
            if pos > 0:
                d.add(barriers[pos - 1])
        deps[ref] = d
    for pos, wave in enumerate(waved):
        d = set(by_wave[wave])
        if pos > 0:
            d.add(barriers[pos - 1])
        deps[barriers[pos]] = d
    decl = {**decl, **{b: -1 for b in barriers}}
    indegree = {r: len(d) for r, d in deps.items()}
    children: dict[ResourceRef, list[ResourceRef]] = {r: [] for r in deps}
    for r, d in deps.items():
        for p in d:
            children[p].append(r)

    def key(r: ResourceRef) -> tuple[int, int, int]:
        s = steps.get(r)
        if s is None:
            return (-1, 0, 0)
        return (group_of[s.wave], s.layer, decl[r])

    heap = [(key(r), r) for r, n in indegree.items() if n == 0]
    heapq.heapify(heap)
    out: list[ResourceRef] = []
    while heap:
        _, r = heapq.heappop(heap)
        if r in steps:
            out.append(r)
        for c in children[r]:
            indegree[c] -= 1
            if indegree[c] == 0:
                heapq.heappush(heap, (key(c), c))
    return out
