"""Regenerate soc_core/store/ecs_fields.json from the ECS reference (ecs_flat.yml).

Usage: python scripts/gen_ecs_fields.py ../shared/data/ecs/ecs_flat.yml

Writes {flat field name: type} with the types the minimal Elasticsearch distribution lacks
downgraded (match_only_text→text, wildcard/constant_keyword→keyword, scaled_float→float).
ECS is Apache-2.0 licensed; only names and types are kept.
"""

import json
import sys
from pathlib import Path

from soc_core.safe_yaml import load_yaml_file

DOWNGRADE = {
    "match_only_text": "text",
    "wildcard": "keyword",
    "constant_keyword": "keyword",
    "scaled_float": "float",
}
SKIP_TYPES = {"object", "nested", "flattened"}


def main() -> None:
    source = Path(sys.argv[1])
    fields = load_yaml_file(source)
    out: dict[str, str] = {}
    for name, spec in sorted(fields.items()):
        kind = DOWNGRADE.get(spec["type"], spec["type"])
        if kind in SKIP_TYPES:
            continue
        out[name] = kind
    target = Path(__file__).resolve().parent.parent / "soc_core" / "store" / "ecs_fields.json"
    target.write_text(json.dumps(out, indent=0, sort_keys=True) + "\n")
    print(f"{len(out)} fields → {target}")


if __name__ == "__main__":
    main()
