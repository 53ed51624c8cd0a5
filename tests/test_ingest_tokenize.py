"""The tokenizer ingest uses must equal spaCy's tokenizer + sentencizer, and be rebuildable from options."""

import pytest
import spacy
from gensim.test.utils import datapath

from nlpzk.errors import InvalidInputError
from nlpzk.ingest import make_tokenizer, tokenizer_options

TRICKY = [
    "",
    "   ",
    ". Hello",
    'Hi!!! "Yes." (no) ... ok.  Next\n\nline',
    "!?",
    "a . . b",
    "x.",
    '"Wow!" she said. "Really?" he asked.',
    "Dr. Smith arrived at 5 p.m. yesterday. He left.",
    "One sentence without an end",
]


def _spacy_sentences(nlp, text):
    sents = [[t.text for t in s if not t.is_space and t.text.strip()] for s in nlp(text).sents]
    return [s for s in sents if s]


def test_sentences_equal_spacy_sentencizer():
    lines = [l.strip() for l in open(datapath("lee_background.cor"), encoding="utf-8") if l.strip()][:120]
    texts = TRICKY + lines
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    raw = dict(lang="en", lowercase=False, drop_punct=False, drop_urls=False, max_token_length=10**6)
    got = list(make_tokenizer(raw).pipe(texts, batch_size=37))  # odd batch size: boundaries cross batches
    assert got == [_spacy_sentences(nlp, t) for t in texts]


def test_default_options_golden():
    tok = make_tokenizer({"lang": "en"})
    assert tok("Hello world. It works! Visit http://x.com or mail a@b.com, 12,000 dogs.") == [
        ["hello", "world"],
        ["it", "works"],
        ["visit", "or", "mail", "12,000", "dogs"],
    ]


def test_filters_and_lemmas():
    tok = make_tokenizer({"lang": "en", "lemmatize": True, "drop_numbers": True, "max_token_length": 7, "min_sentence_tokens": 2})
    assert tok("Dogs were barking at 3 cats. Silence. Extraordinarily loud dogs!") == [["dog", "be", "bark", "at", "cat"], ["loud", "dog"]]


def test_options_are_validated():
    assert tokenizer_options({"lang": "de"}) == dict(tokenizer_options(), lang="de")
    with pytest.raises(InvalidInputError):
        tokenizer_options({"lang": "en", "colour": "blue"})
    with pytest.raises(InvalidInputError) as bad:
        tokenizer_options({"min_sentence_tokens": 0})
    # a bad argument (exit 5), and still the ConfigError API callers caught before
    from nlpzk.errors import ConfigError

    assert isinstance(bad.value, ConfigError) and bad.value.exit_code == InvalidInputError.exit_code
    with pytest.raises(InvalidInputError, match="unknown language 'qq'"):
        make_tokenizer({"lang": "qq"})
    # Japanese is a language spaCy has, whose tokenizer needs SudachiPy (not installed): it was
    # called unknown ("spaCy has no tokenizer for it"); the line now names what is missing
    with pytest.raises(InvalidInputError, match="spaCy's tokenizer for 'ja' needs a library that is not installed: .*SudachiPy"):
        make_tokenizer({"lang": "ja"})


def test_resetting_spacy_state_does_not_change_output():
    """The tokenizer starts a fresh spaCy pipeline every max_types types (flat memory): same output."""
    from nlpzk.ingest.tokenize import Tokenizer

    lines = [l.strip() for l in open(datapath("lee_background.cor"), encoding="utf-8") if l.strip()][:60]
    small = Tokenizer({"lang": "en"}, max_types=50)
    assert list(small.pipe(lines, batch_size=7)) == list(make_tokenizer({"lang": "en"}).pipe(lines))
    assert small.resets >= 5


_PIECES = ["a", "Bee", "x.", ".", "!", "?", "...", '"', "(", ")", ",", "-", " ", "  ", "\n", "\n\n", "U.S.", ":)", "e.g.", "12", "3.5", "\u3002", "\u00bf"]


@pytest.fixture(scope="module")
def _reference():
    nlp = spacy.blank("en")
    nlp.add_pipe("sentencizer")
    raw = make_tokenizer(dict(lang="en", lowercase=False, drop_punct=False, drop_urls=False, max_token_length=10**6))
    return nlp, raw


def test_sentence_rule_matches_spacy_on_random_texts(_reference):
    """Property: for any mix of words, sentence-final marks, quotes and whitespace, the vectorized rule
    splits exactly where spaCy's Sentencizer does, also when many texts share one batch."""
    from hypothesis import given, settings
    from hypothesis import strategies as st

    nlp, raw = _reference
    texts_strategy = st.lists(st.lists(st.sampled_from(_PIECES), max_size=25).map(" ".join), min_size=1, max_size=6)

    @settings(max_examples=150, deadline=None)
    @given(texts_strategy)
    def check(texts):
        assert list(raw.pipe(texts, batch_size=4)) == [_spacy_sentences(nlp, t) for t in texts]

    check()
