"""The word tokenizer: each rule alone, the splitter, decoding, and rules stored as data by registered name."""

import json

import pytest

from lamina.core.serial import SerialError
from lamina.text import (
    BOS,
    DEFAULT_POST_RULES,
    PAD,
    SPECIAL_TOKENS,
    UNK,
    WordTokenizer,
    add_bos,
    collapse_spaces,
    decode,
    fix_html,
    join_tokens,
    lowercase,
    mark_all_caps,
    mark_capitalized,
    mark_char_repetition,
    mark_word_repetition,
    register_rule,
    registered_rules,
    split_words,
    tokenizer_from_state,
)
from tests.text.tweets_data import tweets


def test_special_tokens_start_with_unk_then_pad_so_pad_idx_is_1():
    assert SPECIAL_TOKENS[:4] == ("xxunk", "xxpad", "xxbos", "xxeos") and SPECIAL_TOKENS.index(PAD) == 1
    assert all(t.startswith("xx") for t in SPECIAL_TOKENS) and len(set(SPECIAL_TOKENS)) == len(SPECIAL_TOKENS)
    assert UNK == SPECIAL_TOKENS[0]


def test_fix_html_unescapes_entities_and_turns_breaks_into_newlines():
    assert fix_html("a &lt;b&gt; &amp; c<BR/>d<br >e") == "a <b> & c\nd\ne"


def test_mark_char_repetition_marks_punctuation_runs_and_word_final_letter_runs_only():
    assert mark_char_repetition("wow!!!!") == "wow xxrep 4 ! "
    assert mark_char_repetition("yesssss") == "ye xxrep 5 s "
    assert mark_char_repetition("goooood and !!! and sooo") == "goooood and !!! and sooo"  # mid-word, or < 4


def test_collapse_spaces_keeps_newlines():
    assert collapse_spaces(" a \t b\n c ") == "a b\n c"


def test_split_words_separates_contractions_punctuation_and_keeps_urls_and_numbers_whole():
    assert split_words("Can't stop, won't stop: 3.5 cars/day at https://x.co/A?b=1 #sxsw @bob_1 ...") == [
        "Ca", "n't", "stop", ",", "wo", "n't", "stop", ":", "3.5", "cars", "/", "day", "at", "https://x.co/A?b=1",
        "#", "sxsw", "@", "bob", "_", "1", "...",
    ]  # fmt: skip
    assert split_words("I'm here, you're there, it'd go") == [
        "I", "'m", "here", ",", "you", "'re", "there", ",", "it", "'d", "go",
    ]  # fmt: skip


def test_mark_word_repetition_needs_three_repeats():
    assert mark_word_repetition(["ha", "ha", "ha", "ha", "no", "no"]) == ["xxwrep", "4", "ha", "no", "no"]


def test_mark_all_caps_marks_words_of_two_or_more_capitals_only():
    assert mark_all_caps(["NASA", "I", "Ok", "A1B"]) == ["xxup", "nasa", "I", "Ok", "xxup", "a1b"]


def test_mark_capitalized_marks_title_case_words_and_leaves_mixed_case_to_lowercase():
    assert mark_capitalized(["Tesla", "iPhone", "McDonald", "I"]) == ["xxmaj", "tesla", "iPhone", "McDonald",
                                                                      "xxmaj", "i"]  # fmt: skip
    assert lowercase(["iPhone", "McDonald"]) == ["iphone", "mcdonald"]


def test_add_bos_puts_the_beginning_of_text_token_first():
    assert add_bos(["a"]) == [BOS, "a"]


def test_join_tokens_glues_punctuation_hashtags_and_contractions():
    assert join_tokens(["wo", "n't", "go", "to", "#", "sxsw", ",", "see", "@", "bob", "(", "ok", ")", "."]) == (
        "won't go to #sxsw, see @bob (ok)."
    )


def test_decode_restores_capitals_and_repetitions():
    tokens = WordTokenizer().tokenize("OMG Tesla cars are sooooo COOL COOL COOL!!!!!")
    assert tokens[:3] == [BOS, "xxup", "omg"] and "xxwrep" in tokens and "xxrep" in tokens
    assert decode(tokens) == "OMG Tesla cars are sooooo COOL COOL COOL!!!!!"


def test_decode_of_real_tweets_gives_back_the_text_up_to_spacing_and_case_inside_words():
    tok = WordTokenizer()
    texts = tweets(300)["text"].tolist()
    exact = 0
    for text in texts:
        decoded = decode(tok.tokenize(text))
        # what decoding cannot know: spaces around punctuation, and lower-cased letters inside mixed-case words
        assert "".join(decoded.split()).lower() == "".join(fix_html(text).split()).lower(), text
        exact += decoded.lower() == " ".join(fix_html(text).split()).lower()
    assert exact > 0.5 * len(texts)  # about 2/3: the rest differ by a space around a symbol


def test_rules_are_plain_lists_a_user_can_change():
    tok = WordTokenizer()
    tok.post_rules.remove(add_bos)
    assert tok.tokenize("Hi there") == ["xxmaj", "hi", "there"]
    assert WordTokenizer(post_rules=["lowercase"]).tokenize("Hi THERE") == ["hi", "there"]
    assert tuple(WordTokenizer().post_rules) == DEFAULT_POST_RULES  # a new tokenizer has its own copy


def test_tokenizer_state_is_json_with_rule_names_and_rebuilds_the_same_tokenizer():
    tok = WordTokenizer(pre_rules=[fix_html], post_rules=[mark_all_caps, lowercase])
    state = json.loads(json.dumps(tok.state()))
    assert state == {"kind": "word", "pre_rules": ["fix_html"], "post_rules": ["mark_all_caps", "lowercase"]}
    again = tokenizer_from_state(state)
    assert again.tokenize("BIG &amp; Small") == tok.tokenize("BIG &amp; Small") == ["xxup", "big", "&", "small"]


def test_a_registered_user_rule_round_trips_and_an_unregistered_one_is_refused_by_name():
    def drop_urls(tokens: list[str]) -> list[str]:
        return [t for t in tokens if not t.startswith("http")]

    tok = WordTokenizer(post_rules=[drop_urls])
    assert tok.tokenize("see http://x.co") == ["see"]
    with pytest.raises(SerialError, match=r"drop_urls.*register_rule"):
        tok.state()
    register_rule(drop_urls, name="test_drop_urls")
    assert tokenizer_from_state(tok.state()).tokenize("see http://x.co") == ["see"]
    assert registered_rules()["test_drop_urls"] is drop_urls


def test_loading_a_state_naming_an_unknown_rule_fails_with_the_name():
    with pytest.raises(SerialError, match=r"no tokenizer rule is registered as 'os\.system'"):
        tokenizer_from_state({"kind": "word", "pre_rules": ["os.system"], "post_rules": []})


def test_registering_a_different_rule_under_a_taken_name_is_an_error():
    def fix_html(text: str) -> str:
        return text

    with pytest.raises(ValueError, match="already registered as 'fix_html'"):
        register_rule(fix_html)


def test_tokenize_rejects_non_strings_with_the_value():
    with pytest.raises(TypeError, match="takes a string, got float nan"):
        WordTokenizer().tokenize(float("nan"))


def test_mark_char_repetition_leaves_digit_runs_and_whole_word_letter_runs_alone():
    assert mark_char_repetition("1000000 zzzzz ____ ok") == "1000000 zzzzz ____ ok"
    assert mark_char_repetition("nooooo, ....") == "n xxrep 5 o ,  xxrep 4 . "
