"""Moving one item of a block-style YAML list to another place in the same list, as a text edit.

ruamel.yaml keeps a comment with the node *before* it, so moving list nodes and dumping would carry
an item's leading comment off with its neighbour and re-flow the file. Here the list's items are cut
out of the text as blocks of lines instead, and only the blocks are put in a new order:

- an item's block starts at its dash, or at the comment lines directly above it (no blank line
  between) written at the dash's column; above the first item such comments count only when a key
  line is above them, since a comment at the top of a file describes the file;
- it ends after its last line that is not blank and not a comment left of the item's content;
- what lies between two blocks (blank lines, comments set apart by a blank line) stays where it is,
  as does everything before the first and after the last block.

So every byte outside the moved blocks is kept. The caller checks that the result still parses to
the reordered data (`move_item` cannot see anchors, for one)."""

from ruamel.yaml.comments import CommentedSeq


class MoveError(ValueError):
    """The list cannot be reordered as text; `message` says why."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


def _indent(line: str) -> int:
    return len(line) - len(line.lstrip(" "))


def _blank(line: str) -> bool:
    return not line.strip()


def _comment_at(line: str, col: int) -> bool:
    return line.lstrip(" ").startswith("#") and _indent(line) == col


def _dash_at(line: str, col: int) -> bool:
    return _indent(line) == col and line[col : col + 1] == "-" and line[col + 1 : col + 2] in (" ", "\n", "")


def _content(line: str, col: int) -> bool:
    """Part of an item whose dash is at `col` (a comment left of its content is not)."""
    if _blank(line):
        return False
    return not (line.lstrip(" ").startswith("#") and _indent(line) <= col)


def item_blocks(lines: list[str], seq: CommentedSeq) -> list[tuple[int, int]]:
    """[start, end) line ranges of the items of block list `seq` (parsed from `lines`)."""
    if seq.fa.flow_style():
        raise MoveError("the list is written in flow style ([a, b]); write it as a block list to reorder it")
    col = seq.lc.col
    heads: list[int] = []
    for index in range(len(seq)):
        line = seq.lc.item(index)[0]
        while line > 0 and not _dash_at(lines[line], col):
            line -= 1  # "-" alone on its line, the item on the next one
        if not _dash_at(lines[line], col) or (heads and line <= heads[-1]):
            raise MoveError("the list's items could not be told apart in the text")
        heads.append(line)
    starts: list[int] = []
    for index, head in enumerate(heads):
        start = head
        floor = heads[index - 1] if index else -1
        while start - 1 > floor and _comment_at(lines[start - 1], col):
            start -= 1
        if index == 0 and start < head and (start == 0 or lines[start - 1].startswith("---")):
            start = head  # the file's own header comment
        starts.append(start)
    blocks: list[tuple[int, int]] = []
    for index, head in enumerate(heads):
        if index + 1 < len(heads):
            limit = starts[index + 1]
        else:
            limit = head + 1
            while limit < len(lines) and (_blank(lines[limit]) or _indent(lines[limit]) > col):
                limit += 1
        end = head + 1
        for at in range(head + 1, limit):
            if _content(lines[at], col):
                end = at + 1
        blocks.append((starts[index], end))
    return blocks


def move_item(text: str, seq: CommentedSeq, index: int, to: int) -> str:
    """`text` with item `index` of block list `seq` (parsed from `text`) moved to position `to` of
    the list (counted after taking it out)."""
    if not 0 <= index < len(seq) or not 0 <= to < len(seq):
        raise MoveError(f"no position {index} or {to} in a list of {len(seq)}")
    lines = text.splitlines(keepends=True)
    blocks = item_blocks(lines, seq)
    order = list(range(len(seq)))
    order.insert(to, order.pop(index))
    out: list[str] = list(lines[: blocks[0][0]])
    for position, item in enumerate(order):
        block = lines[blocks[item][0] : blocks[item][1]]
        if block and not block[-1].endswith("\n"):
            block = [*block[:-1], block[-1] + "\n"]
        out.extend(block)
        if position + 1 < len(order):
            out.extend(lines[blocks[position][1] : blocks[position + 1][0]])
    out.extend(lines[blocks[-1][1] :])
    moved = "".join(out)
    if not text.endswith("\n") and moved.endswith("\n"):
        moved = moved[:-1]
    return moved
