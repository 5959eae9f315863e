"""Where the embedded demo help center (fictional company Northwind) lives in the package."""

from pathlib import Path

DEMO_DIR = Path(__file__).resolve().parent / "demo"
ARTICLES_DIR = DEMO_DIR / "articles"
TESTSET = DEMO_DIR / "testset.jsonl"
DEVSET = DEMO_DIR / "devset.jsonl"
TRANSCRIPTS = DEMO_DIR / "transcripts.jsonl"
