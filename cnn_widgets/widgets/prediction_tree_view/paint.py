"""PredictionTreeView's pictures (pure numpy): the category hierarchy with its minimum spanning
tree, one category's prediction tree, and the images of a clicked node, as RGBA sheets with
their captions. Lines and discs are rasterised here, anti-aliased (coverage of a pixel centre
by a segment or disc of the given width), on white.

Red marks what was chosen: the path from the view's focus to the category (dendrogram) and
the category's disc (MST); in the prediction tree the image's path and its critical filters.
"""
from __future__ import annotations

import html
from collections.abc import Sequence

import numpy as np

from .. import draw
from ..sheets import Caption, Sheet, fit_text
from .geometry import (
    CAT_SIZE,
    DENDRO_W,
    DISC_R,
    GROUP_R,
    LABEL_W,
    MARGIN,
    REST,
    CategoryView,
    Hierarchy,
    Point,
)

RED, BLUE, DARK = (221, 0, 0), (31, 95, 168), (34, 34, 34)
GREY, LIGHT, PALE = (136, 136, 136), (187, 187, 187), (225, 225, 225)
PINK = (255, 170, 170)          # the chosen category's disc and label (captions are dark)
Colour = tuple[int, int, int]
KEYS = "ABCDEFGHIJKLMNOPQRSTUVWXYZ"   # a row's letter, on its disc (MAX_SHOWN rows at most)


def blank(height: int, width: int) -> np.ndarray:
    """A white, opaque (height, width, 4) sheet."""
    out = np.empty((height, width, 4), np.uint8)
    out[:] = draw.BACKGROUND
    return out


def _blend(rgba: np.ndarray, box: tuple[int, int, int, int], alpha: np.ndarray,
           colour: Colour) -> None:
    y0, y1, x0, x1 = box
    part = rgba[y0:y1, x0:x1, :3].astype(np.float64)
    a = alpha[..., None]
    rgba[y0:y1, x0:x1, :3] = np.rint(part * (1 - a) + np.array(colour, np.float64) * a)


def _grid(rgba: np.ndarray, xs: Sequence[float], ys: Sequence[float], pad: float):
    """The pixel box around points (xs, ys) grown by ``pad``, clipped to the sheet, and its
    pixel centres; None when it is empty."""
    h, w = rgba.shape[:2]
    x0, x1 = max(int(np.floor(min(xs) - pad)), 0), min(int(np.ceil(max(xs) + pad)) + 1, w)
    y0, y1 = max(int(np.floor(min(ys) - pad)), 0), min(int(np.ceil(max(ys) + pad)) + 1, h)
    if x0 >= x1 or y0 >= y1:
        return None
    yy, xx = np.mgrid[y0:y1, x0:x1] + 0.5
    return (y0, y1, x0, x1), xx, yy


def line(rgba: np.ndarray, a: Point, b: Point, colour: Colour, width: float = 1.0) -> None:
    """A segment from ``a`` to ``b`` (canvas px), ``width`` px wide, in place."""
    got = _grid(rgba, (a[0], b[0]), (a[1], b[1]), width / 2 + 1)
    if got is None:
        return
    box, xx, yy = got
    dx, dy = b[0] - a[0], b[1] - a[1]
    t = np.clip(((xx - a[0]) * dx + (yy - a[1]) * dy) / max(dx * dx + dy * dy, 1e-12), 0, 1)
    d = np.hypot(xx - a[0] - t * dx, yy - a[1] - t * dy)
    _blend(rgba, box, np.clip(width / 2 + 0.5 - d, 0, 1), colour)


def disc(rgba: np.ndarray, c: Point, r: float, colour: Colour | None,
         outline: Colour | None = None, width: float = 1.0) -> None:
    """A disc of radius ``r`` px at ``c`` filled with ``colour`` (None: not filled), with an
    ``outline`` ring ``width`` px wide, in place."""
    got = _grid(rgba, (c[0],), (c[1],), r + width + 1)
    if got is None:
        return
    box, xx, yy = got
    d = np.hypot(xx - c[0], yy - c[1])
    if colour is not None:
        _blend(rgba, box, np.clip(r + 0.5 - d, 0, 1), colour)
    if outline is not None:
        _blend(rgba, box, np.clip(width / 2 + 0.5 - np.abs(d - r), 0, 1), outline)


def triangle(rgba: np.ndarray, p: Sequence[Point], colour: Colour) -> None:
    """A filled triangle with corners ``p`` (three points), in place (no anti-aliasing)."""
    got = _grid(rgba, [q[0] for q in p], [q[1] for q in p], 0)
    if got is None:
        return
    box, xx, yy = got
    sides = [(p[(i + 1) % 3][0] - p[i][0]) * (yy - p[i][1])
             - (p[(i + 1) % 3][1] - p[i][1]) * (xx - p[i][0]) for i in range(3)]
    inside = np.all([s >= 0 for s in sides], 0) | np.all([s <= 0 for s in sides], 0)
    _blend(rgba, box, inside.astype(np.float64), colour)


def _centred(text: str, c: Point) -> Caption:
    return Caption(text, int(round(c[0] - 3.1 * len(text))), int(round(c[1] + 4)))


def categories_sheet(h: Hierarchy, view: CategoryView, names: Sequence[str],
                     size: tuple[int, int] = CAT_SIZE) -> Sheet:
    """The hierarchy ``h`` as ``view`` lays it out: the dendrogram from the view's focus with
    its rows labelled (a category by its name, a closed group by its number of categories and
    first names), the path to the chosen category in red and its row (or the group's holding
    it) and disc in pink; the MST of the discs.
    Discs show the names when they are short (the digits); otherwise each row and its disc
    share a letter."""
    rgba = blank(*size)
    right = DENDRO_W - LABEL_W
    keyed = any(k >= h.n or len(names[k]) > 2 for k in view.rows)
    key = {k: KEYS[i] + " " if keyed else "" for i, k in enumerate(view.rows)}
    shown = f"{len(view.rows)} of {h.size[view.focus]}" if view.focus != h.root else ""
    caps = [Caption("hierarchy (WPGMA)" + (f", {shown} shown" if shown else ""), MARGIN, 12),
            Caption("minimum spanning tree", DENDRO_W + 20, 12)]
    for a, b, red in view.lines(h):
        line(rgba, a, b, RED if red else (68, 68, 68), 2.5 if red else 1.5)
    for k in view.open:
        disc(rgba, view.xy[k], 2.5, RED if k in view.red else (68, 68, 68))
    half = max(2.0, min(view.row_h * 0.4, 7.0))
    for k in view.rows:
        x, y = view.xy[k]
        if k in view.red:                            # the category, or the group holding it
            rgba[int(y - half):int(y + half) + 1, right + 3:DENDRO_W - 4, :3] = PINK
        if k < h.n:
            text = names[k]
        else:
            triangle(rgba, [(x, y), (right, y - half), (right, y + half)], PALE)
            line(rgba, (x, y), (right, y), GREY, 1.0)
            first = ", ".join(names[i] for i in h.leaves(k)[:2])
            text = f"({h.size[k]}) {first}, …"
        caps.append(Caption(fit_text(key[k] + text, LABEL_W - 10), right + 6, int(round(y + 4))))
    for i, j in view.edges:
        line(rgba, view.discs[i], view.discs[j], BLUE, 2.0)
    for k, c in view.discs.items():
        if k == REST:
            disc(rgba, c, GROUP_R, (245, 245, 245), GREY)
        elif k < h.n:
            disc(rgba, c, DISC_R, PINK if k in view.red else (255, 255, 255), DARK)
        else:
            fill = PINK if k in view.red else PALE
            disc(rgba, c, GROUP_R, fill, DARK)
            disc(rgba, c, GROUP_R - 3, fill, GREY)
        caps.append(_centred("…" if k == REST else key[k].strip() or names[k][:2], c))
    return Sheet(rgba, tuple(caps))


def tree_sheet(tree, pos: dict[int, Point], is_open: frozenset[int], on_path: set[int],
               selected: int, size: tuple[int, int]) -> Sheet:
    """The prediction tree ``tree`` with its shown nodes at ``pos`` (canvas px; -1: the root),
    ``is_open`` the nodes whose children are shown (the others closed, a grey wedge under
    them with the number of images when there is room), the nodes ``on_path`` and their
    edges in red with their critical filters, the ``selected`` node ringed."""
    rgba = blank(*size)
    n = len(tree.images)
    caps = [Caption(fit_text(f"prediction tree of '{tree.name}' at {tree.layer}: {n} images, "
                             f"{tree.n_filters} filters; fN: critical filter",
                             size[1] - 2 * MARGIN), MARGIN, 12)]
    for k in {-1} | set(is_open):
        for kid in tree.children(k):
            red = kid in on_path
            line(rgba, pos[k], pos[kid], RED if red else LIGHT, 2.5 if red else 1.0)
    bottom = [k for k in pos if k not in is_open and k != -1]
    room = (size[1] - 2 * MARGIN) / max(len(bottom), 1) >= 16
    for k in bottom:
        if k >= n:                                   # a closed super node
            x, y = pos[k]
            triangle(rgba, [(x, y), (x - 4, y + 9), (x + 4, y + 9)], LIGHT)
            if room:
                caps.append(_centred(str(tree.merges.size[k]), (x, y + 1)))
    for k, (x, y) in pos.items():
        leaf = 0 <= k < n
        colour = RED if k in on_path or k == -1 else (GREY if leaf else BLUE)
        disc(rgba, (x, y), 2.5 if leaf else 4, colour)
    for k in on_path:                                # critical filters on the path
        if k >= n and k in pos:
            caps.append(Caption(f"f{tree.critical(k)}", int(pos[k][0] + 5), int(pos[k][1] - 4)))
    if selected >= 0 and selected in pos:
        disc(rgba, pos[selected], 8, None, (0, 0, 0), 2.0)
    return Sheet(rgba, tuple(caps))


def detail_sheet(images: Sequence[np.ndarray]) -> Sheet:
    """Input images (C, H, W) in [0, 1], enlarged twice, side by side."""
    cells = [[draw.upscale(draw.image(x), 2) for x in images]]
    rgba, _ = draw.tile(cells, cells[0][0].shape[:2], (2, 4))
    return Sheet(rgba)


# -- the texts beside the pictures (HTML: every name escaped) --------------------------------
def breadcrumb_html(h: Hierarchy, leaf: int | None, focus: int, name: str, images: int) -> str:
    """The path from the root of ``h`` to category ``leaf`` (named ``name``, with ``images``
    in the dataset; None: not in the hierarchy), as the categories under each node: the root,
    the ``focus`` (underlined) and the last six steps."""
    name = html.escape(name)
    if leaf is None:
        return (f"<b>{name}</b>: " + ("not among the categories scanned so far" if images
                else "no images in the dataset, so no class mean: not in the hierarchy"))
    path, node = h.path(leaf), h.node(focus)
    steps = [("all " if k == h.root else "") + str(h.size[k]) for k in path[:-1]]
    steps = [f"<u>{s}</u>" if k == node else s for k, s in zip(path, steps)]
    keep = {0, *range(len(steps) - 6, len(steps))} | ({path.index(node)} if node in path
                                                       else set())
    shown, skipped = [], 0
    for i, step in enumerate(steps):
        if i in keep:
            shown += [f"… {skipped} more"] * bool(skipped) + [step]
            skipped = 0
        else:
            skipped += 1
    aside = "" if node in path else f" · shown: a group of {h.size[node]} categories"
    return " › ".join(shown + [f"<b>{name}</b>"]) + aside


def category_hover(h: Hierarchy, ct, view: CategoryView, k: int) -> str:
    """What hovering hierarchy node ``k`` (a row, an open merge, a disc) of ``view`` says
    (plain text)."""
    if k == REST:
        return f"{h.n - h.size[view.focus]} categories outside this group: click to zoom out"
    if k >= h.n:
        return (f"{h.size[k]} categories ({int(ct.counts[h.leaves(k)].sum())} images), merged "
                f"at ½(1−cos) = {h.height[k]:.4f}: click to zoom in")
    order = np.argsort(ct.distances[k])[1:4]
    return (f"{ct.names[k]} ({int(ct.counts[k])} images): nearest "
            + ", ".join(f"{ct.names[j]} {ct.distances[k, j]:.3f}" for j in order))


def node_hover(tree, path, node: int, is_open: bool) -> str:
    """What hovering prediction-tree ``node`` says (plain text)."""
    n = len(tree.images)
    text = f"node {node}: {tree.merges.size[node]} images"
    if node >= n:
        text += f", merge distance {tree.merges.distance[node - n]:.4f}"
        text += "" if is_open else " (closed: its nodes are not drawn)"
    if path is not None and node in path.nodes:
        text += f", image distance {path.distance[path.nodes.index(node)]:.4f}"
    return text


def node_html(tree, node: int, top) -> str:
    """The detail text of super node ``node``: its critical filter, merge, reachable filters
    and, once ``top`` (TopImages) is there, what its images are."""
    n, f, kids = len(tree.images), tree.critical(node), tree.children(node)
    filters = np.flatnonzero(tree.merges.filters[node])
    return (f"<b>node {node}</b> ({tree.merges.size[node]} images): critical filter "
            f"<b>{f}</b>, merged at ½(1−cos) = {tree.merges.distance[node - n]:.4f} from "
            f"nodes {kids[0]} and {kids[1]}<br>reachable filters ({len(filters)}): "
            f"{', '.join(str(int(i)) for i in filters)}<br>"
            + (f"dataset images that drive filter {f} most "
               f"({html.escape(top.objective)}):" if top is not None else "…"))


def path_html(tree, path, image: int, label: str | None) -> str:
    """The query's path down ``tree``: of dataset ``image`` labelled ``label``, or of the
    drawn image (``label`` None)."""
    steps = [f"leaf {k} (image {tree.images[k]})" if f < 0 else
             f"node {k}: filter {f} = {a:.2f} (node mean {m:.2f})"
             for k, f, a, m in zip(path.nodes, path.critical, path.image_activation,
                                   path.node_activation)]
    what = ("<b>path of the drawn image</b>" if label is None else
            f"<b>path of image {image}</b> (label {html.escape(label)})")
    return f"{what} in red: " + " → ".join(steps)
