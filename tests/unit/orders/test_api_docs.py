"""docs/api.md stays true to the code: every problem code, its status and whether it is stored."""

import re
from pathlib import Path

from orders.problems import PROBLEM_TYPES, Stage
from orders.routes import ORDER_ROUTES

DOC = (Path(__file__).resolve().parents[3] / "docs" / "api.md").read_text(encoding="utf-8")
ROW = re.compile(r"^\| `([a-z_]+)` \| (\d{3}) \| (yes|no) \|", re.MULTILINE)


def test_the_problem_table_lists_every_code_with_its_status_and_storage():
    documented = {(code, int(status), stored == "yes") for code, status, stored in ROW.findall(DOC)}

    assert documented == {(p.code, p.status, p.stage is Stage.BUSINESS) for p in PROBLEM_TYPES}


def test_every_route_is_documented():
    for route in ORDER_ROUTES:
        assert f"`{route.method} {route.path}" in DOC, route.operation
