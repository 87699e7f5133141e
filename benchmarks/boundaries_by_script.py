"""Where split functions put stage-2 boundaries, language by language: bytes per unit (and its ratio
to English) and how many boundaries fall inside a grapheme cluster (an extended grapheme cluster,
regex's \\X: a letter with its combining marks, a Thai or Devanagari cluster), on the test split of a
prepared corpus. Not a timing: a measurement of the splits.

    .venv/bin/python benchmarks/boundaries_by_script.py data_manifests/libreoffice-help.yaml \\
        --languages en,de,ru,hi,ja,zh-CN --splits word,script,entropy:boundaries/help.pt
"""

from __future__ import annotations

import argparse


def measure(split, texts: list[str]) -> tuple[float, float, int]:
    """(bytes per stage-2 unit, share of stage-2 boundaries inside a grapheme cluster, boundaries)."""
    from aunet_lab.data.splitting.boundary_stats import boundary_stats

    stats = boundary_stats(texts, split)
    return stats.bytes_per_unit()[0], stats.inside_share()[0], stats.boundaries[0]


def main(argv=None) -> None:
    from aunet_lab.data.corpus import default_cache, leading_texts
    from aunet_lab.data.manifest import load_manifest
    from aunet_lab.data.splitting import get_split_function

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("manifest")
    parser.add_argument("--languages", default="en,de,ru,hi,ja,zh-CN")
    parser.add_argument("--splits", default="word,script")
    parser.add_argument("--max-bytes", type=int, default=200_000, help="test text per language")
    parser.add_argument("--cache")
    args = parser.parse_args(argv)
    manifest = load_manifest(args.manifest)
    texts = {lang: leading_texts(manifest, lang, "test", args.cache or default_cache(), args.max_bytes)
             for lang in args.languages.split(",")}
    print("| split | language | bytes per stage-2 unit | ratio to en | boundaries inside a grapheme cluster |")
    print("|---|---|---|---|---|")
    for spec in args.splits.split(","):
        split = get_split_function(spec)
        rows = {lang: measure(split, t) for lang, t in texts.items()}
        english = rows.get("en", (float("nan"),))[0]
        for lang, (bpu, inside, total) in rows.items():
            print(f"| `{spec}` | {lang} | {bpu:.2f} | {bpu / english:.2f} | {100 * inside:.1f}% of {total:,} |")


if __name__ == "__main__":
    main()
