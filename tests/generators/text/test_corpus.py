"""Text data: the embedded corpus, file loading, the split, refusals of bad files, BPE."""

from __future__ import annotations

import pytest

from gailkit.generators import load_family_data
from gailkit.generators.text.corpus import TextData, file_documents, load_text, split_documents, stdlib_documents
from gailkit.generators.text.tokenizer import END_OF_TEXT, encode_documents, tokenizer_sha, train_bpe


def test_stdlib_corpus_is_deterministic_and_split_by_document():
    docs = stdlib_documents()
    assert len(docs) > 1000 and len(set(docs)) == len(docs)
    assert docs == stdlib_documents()
    without_topics = stdlib_documents(topics=False)
    assert docs[:len(without_topics)] == without_topics  # docstrings first, then pydoc's topics
    assert any("assert_stmt ::=" in d for d in docs[len(without_topics):])
    train, test = load_family_data("text", None, split="train"), load_family_data("text", "stdlib", split="test")
    assert set(train.documents).isdisjoint(test.documents)
    assert set(train.documents) | set(test.documents) == set(docs)
    assert 0.05 < len(test) / len(docs) < 0.15
    assert train.info()["sha"] == load_text(None, split="train").info()["sha"]


def test_files_and_directories(tmp_path):
    paras = [f"Paragraph {i}: " + "word " * 50 for i in range(12)]  # ~270 characters each
    (tmp_path / "a.txt").write_text("\n\n".join(paras[:6]), encoding="utf-8")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "b.txt").write_text("\n\n".join(paras[6:]), encoding="utf-8")
    (tmp_path / "sub" / "skip.md").write_text("not text data")
    data = load_text(f"files:{tmp_path / 'a.txt'},{tmp_path / 'sub' / 'b.txt'}")
    assert "".join(data.documents).count("Paragraph") == 12
    assert [d.count("Paragraph") for d in data.documents] == [4, 2, 4, 2]  # merged to >= 1000 characters
    assert load_text(str(tmp_path)).documents == data.documents  # a directory: its .txt files, sorted
    train, test = load_text(str(tmp_path), split="train"), load_text(str(tmp_path), split="test")
    assert sorted(train.documents + test.documents) == sorted(data.documents) and len(test) >= 1


def test_split_is_by_content_and_salted():
    docs = [f"document number {i}" for i in range(400)]
    test = split_documents(docs, "test")
    assert set(split_documents(docs[::-1], "test")) == set(test)  # order does not matter
    assert 20 < len(test) < 60
    assert set(split_documents(docs, "test", salt="validation")) != set(test)


def test_bad_files_are_named(tmp_path):
    with pytest.raises(ValueError, match="nowhere.txt does not exist"):
        load_text(f"files:{tmp_path / 'nowhere.txt'}")
    (tmp_path / "empty.txt").write_text("  \n\n ")
    with pytest.raises(ValueError, match="empty.txt is empty"):
        load_text(f"files:{tmp_path / 'empty.txt'}")
    (tmp_path / "bin.txt").write_bytes(b"text\x00\x01\x02")
    with pytest.raises(ValueError, match=r"bin.txt is binary \(NUL byte at offset 4\)"):
        load_text(f"files:{tmp_path / 'bin.txt'}")
    (tmp_path / "latin.txt").write_bytes("caf\xe9".encode("latin-1"))
    with pytest.raises(ValueError, match="latin.txt is not UTF-8"):
        load_text(f"files:{tmp_path / 'latin.txt'}")
    (tmp_path / "nothing").mkdir()
    with pytest.raises(ValueError, match="holds no .txt files"):
        load_text(str(tmp_path / "nothing"))
    with pytest.raises(ValueError, match="no documents"):
        TextData((), "x")


def test_file_documents_merges_paragraphs():
    assert file_documents("a\n\n\n\nb", min_chars=1) == ["a", "b"]
    assert file_documents("a\n\nb\n\nc", min_chars=5) == ["a\n\nb", "c"]


def test_bpe_round_trip_and_determinism():
    texts = ["Return the sum of *a* and *b*.", "Schöne Grüße — naïve café ☕", "    indented\tcode()\n"] * 20
    tok = train_bpe(texts, vocab_size=300)
    assert len(tok) == 300 and tok.convert_ids_to_tokens(0) == END_OF_TEXT
    for text in texts[:3] + ["never seen: ∑ ∫ 漢字 \x7f"]:  # byte level: unseen characters round-trip too
        assert tok.decode(tok(text, add_special_tokens=False)["input_ids"]) == text
    assert tokenizer_sha(train_bpe(texts, vocab_size=300)) == tokenizer_sha(tok)
    assert tokenizer_sha(train_bpe(texts, vocab_size=280)) != tokenizer_sha(tok)
    stream = encode_documents(tok, ["ab", "c"])
    assert stream[0] == stream[-1] == tok.eos_token_id and stream.count(tok.eos_token_id) == 3
    assert tok.decode(stream) == f"{END_OF_TEXT}ab{END_OF_TEXT}c{END_OF_TEXT}"
    with pytest.raises(ValueError, match="vocab_size must be >= 257"):
        train_bpe(texts, vocab_size=100)
