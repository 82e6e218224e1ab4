"""Probe data readers: CoNLL-U trees (multiword tokens, empty nodes, bad input) and coreference JSON lines."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from attnscope.errors import DataFileError
from attnscope.probe.data import Sentence, base_relation, read_coref, read_treebank

TREE = """# sent_id = s1
# text = I don't know.
1	I	I	PRON	PRP	_	4	nsubj	_	_
2-3	don't	_	_	_	_	_	_	_	_
2	do	do	AUX	VBP	_	4	aux	_	_
3	n't	not	PART	RB	_	4	neg	_	_
4	know	know	VERB	VB	_	0	root	_	_
4.1	knew	know	VERB	VBD	_	_	_	4:conj	_
5	.	.	PUNCT	.	_	4	punct	_	_

1	Bill's	Bill	PROPN	NNP	_	2	nmod:poss	_	_
2	dog	dog	NOUN	NN	_	0	root	_	_
"""


def _write(tmp_path: Path, text: str, name: str = "t.conllu") -> Path:
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_treebank_syntactic_words_multiword_and_empty_nodes(tmp_path: Path) -> None:
    first, second = read_treebank(_write(tmp_path, TREE))
    assert first.words == ("I", "do", "n't", "know", ".")
    assert first.heads == (3, 3, 3, -1, 3)
    assert first.relations == ("nsubj", "aux", "neg", "root", "punct")
    assert first.text == "I do n't know ."
    assert all(first.text[a:b] == w for (a, b), w in zip(first.spans, first.words, strict=True))
    assert first.sent_id == "s1"
    assert first.upos == ("PRON", "AUX", "PART", "VERB", "PUNCT")
    assert second == Sentence(
        words=("Bill's", "dog"),
        heads=(1, -1),
        relations=("nmod:poss", "root"),
        text="Bill's dog",
        spans=((0, 6), (7, 10)),
        sent_id="sentence-2",
        upos=("PROPN", "NOUN"),
    )
    assert base_relation(second.relations[0]) == "nmod"
    assert len(list(read_treebank(_write(tmp_path, TREE), limit=1))) == 1


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("2\tdog\tdog\tNOUN\tNN\t_\t9\tobj\t_\t_", "outside the sentence"),
        ("2\tdog\tdog\tNOUN\tNN\t_\tx\tobj\t_\t_", ":3:"),
        ("2\tdog\tdog\tNOUN\tNN\t_\t2\tobj\t_\t_", "its own head"),
        ("3\tdog\tdog\tNOUN\tNN\t_\t1\tobj\t_\t_", "out of order"),
        ("2\tdog\tdog\tNOUN", "10 tab-separated"),
        ("2\tdog\tdog\tNOUN\tNN\t_\t_\tobj\t_\t_", "no HEAD"),
        ("2\tdog\tdog\tNOUN\tNN\t_\t1\t_\t_\t_", "no DEPREL"),
    ],
)
def test_treebank_malformed_names_file_and_line(tmp_path: Path, line: str, message: str) -> None:
    path = _write(tmp_path, "# sent_id = a\n1\tA\ta\tDET\tDT\t_\t0\troot\t_\t_\n" + line + "\n")
    with pytest.raises(DataFileError, match=message) as err:
        list(read_treebank(path))
    assert f"{path}:3" in str(err.value)


def test_treebank_bad_files(tmp_path: Path) -> None:
    with pytest.raises(DataFileError, match="not found"):
        list(read_treebank(tmp_path / "missing.conllu"))
    with pytest.raises(DataFileError, match="no sentences"):
        list(read_treebank(_write(tmp_path, "# only a comment\n\n")))
    bad = tmp_path / "latin1.conllu"
    bad.write_bytes(b"1\tcaf\xe9\tcafe\tNOUN\tNN\t_\t0\troot\t_\t_\n")
    with pytest.raises(DataFileError, match=r"latin1.conllu:1: not UTF-8"):
        list(read_treebank(bad))


def test_treebank_reads_ewt_dev(shared_data: Path) -> None:
    sentences = list(read_treebank(shared_data / "ud-ewt" / "en_ewt-uds-dev.conllu"))
    assert len(sentences) == 2002
    assert sum(len(s) for s in sentences) == 25148
    assert all(s.heads.count(-1) == 1 for s in sentences)
    assert sentences[0].words[:3] == ("From", "the", "AP")


def test_coref_both_formats_in_text_order(tmp_path: Path) -> None:
    text = "Anna told Mary that she won."
    rows = [
        {
            "id": "a",
            "text": text,
            "pronoun": {"text": "she", "start": 20, "end": 23},
            "antecedent": {"text": "Mary", "start": 10, "end": 14},
            "distractor": {"text": "Anna", "start": 0, "end": 4},
        },
        {
            "text": text,
            "pronoun": {"start": 20, "end": 23},
            "candidates": [{"start": 10, "end": 14}, {"start": 0, "end": 4}, {"start": 5, "end": 9}],
            "answer": 2,
        },
    ]
    path = _write(tmp_path, "\n".join(json.dumps(r) for r in rows) + "\n\n", "c.jsonl")
    first, second = read_coref(path)
    assert first.id == "a"
    assert first.candidates == ((0, 4), (10, 14))
    assert first.answer == 1  # Mary, the second mention in the text
    assert second.id == "line-2"
    assert second.candidates == ((0, 4), (5, 9), (10, 14))
    assert second.candidates[second.answer] == (5, 9)


@pytest.mark.parametrize(
    ("row", "message"),
    [
        ("{not json", "not valid JSON"),
        ('{"text": "a b", "pronoun": {"start": 0, "end": 1}}', "antecedent"),
        ('{"text": "a b", "pronoun": {"start": 0, "end": 9}, "candidates": [], "answer": 0}', "not inside"),
        (
            '{"text": "a b c", "pronoun": {"start": 0, "end": 1, "text": "x"}, "antecedent": {"start": 2, "end": 3}, '
            '"distractor": {"start": 4, "end": 5}}',
            "says 'x'",
        ),
        (
            '{"text": "a b c", "pronoun": {"start": 0, "end": 1}, "candidates": [{"start": 2, "end": 3}, '
            '{"start": 4, "end": 5}], "answer": 5}',
            "answer",
        ),
        (
            '{"text": "a b c", "pronoun": {"start": 0, "end": 1}, "candidates": [{"start": 2, "end": 3}], "answer": 0}',
            "at least two",
        ),
        ("[1, 2]", "JSON object"),
    ],
)
def test_coref_malformed_names_file_and_line(tmp_path: Path, row: str, message: str) -> None:
    good = (
        '{"text": "a b c", "pronoun": {"start": 0, "end": 1}, "antecedent": {"start": 2, "end": 3}, '
        '"distractor": {"start": 4, "end": 5}}'
    )
    path = _write(tmp_path, good + "\n" + row + "\n", "c.jsonl")
    with pytest.raises(DataFileError, match=message) as err:
        list(read_coref(path))
    assert f"{path}:2" in str(err.value)


def test_coref_reads_wsc(shared_data: Path) -> None:
    items = list(read_coref(shared_data / "coref" / "wsc273.jsonl"))
    assert len(items) == 263
    assert all(len(i.candidates) == 2 for i in items)
    assert items[0].text[slice(*items[0].candidates[items[0].answer])] == "The city councilmen"
    assert len(list(read_coref(shared_data / "coref" / "wsc273.jsonl", limit=5))) == 5
