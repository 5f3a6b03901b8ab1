#!/usr/bin/env python3
"""Writes NAME.expected for each vocab file: the token ids llama.cpp's
tokenizer gives for every fixture string, with and without the special tokens
the vocabulary adds (BOS/EOS). Special-token text in the strings is parsed as
the special token (parse_special, llama-tokenize's default).

usage: make_expected.py LLAMA_CPP_DIR LLAMA_IDS_BINARY [LLAMA_TOKENIZE_BINARY]
(run from tests/data/tokenizer; see README.md). LLAMA_IDS_BINARY is llama_ids.c
built against libllama; with LLAMA_TOKENIZE_BINARY every id list is also
checked against llama.cpp's llama-tokenize --ids.

Line format of NAME.expected (after the # header):
  INPUT_HEX <TAB> ADD_SPECIAL(0|1) <TAB> ids separated by spaces
"""
import os
import subprocess
import sys
import tempfile

VOCABS = ["llama-bpe", "qwen2", "gpt-2", "smollm", "default"]

OURS = [
    # ASCII
    b"Hello world", b"The quick brown fox jumps over the lazy dog.", b"a", b"A.B,C;D:E?F!G",
    b"snake_case and camelCase and kebab-case", b"$100 + 200 = <300> ^ ~ | `x`",
    b"if (x == 1) { return y[2]; } // comment",
    # whitespace runs
    b" ", b"  ", b"     ", b"\t", b"\t\t x", b"\n", b"\n\n\n", b" \n \n ", b"a  b   c    d",
    b"line one\nline two\r\nline three\r", b"   leading and trailing   ", b"tab\tseparated\tvalues",
    b"x \n\n  y", b"\u00a0non-breaking\u2003em space\u3000ideographic".decode("unicode_escape").encode(),
    # digits
    b"0", b"12", b"123", b"1234", b"12345678901234567890", b"3.14159 and 2,718", b"v1.2.3-rc4",
    b"call 555-0100 at 9am", b"\xd9\xa1\xd9\xa2\xd9\xa3 arabic-indic digits", b"\xe2\x85\xa0\xe2\x85\xa1 roman",
    # contractions
    b"it's", b"IT'S", b"don't won't can't", b"we're they've I'm you'll he'd", b"WE'RE THEY'VE I'M YOU'LL HE'D",
    b"'s's'tt'", b"rock'n'roll", b"O'Reilly's", b"' s", b"''",
    # CJK
    "\u4eca\u5929\u5929\u6c14\u5f88\u597d".encode(), "\u6771\u4eac\u306f\u5927\u304d\u3044\u3067\u3059\u3002".encode(),
    "\ud55c\uad6d\uc5b4 \ud14c\uc2a4\ud2b8".encode(), "mixed \u4e2d\u6587 and English \u6df7\u5408".encode(),
    "\u3002\uff0c\uff01\uff1f".encode(),
    # emoji and other scripts
    "\U0001f999 llama".encode(), "\U0001f600\U0001f601\U0001f602".encode(), "\U0001f468\u200d\U0001f469\u200d\U0001f467 family".encode(),
    "\U0001f44d\U0001f3fd ok".encode(), "\u00c4pfel \u00fcber Stra\u00dfe".encode(), "\u041f\u0440\u0438\u0432\u0435\u0442 \u043c\u0438\u0440".encode(),
    "\u0645\u0631\u062d\u0628\u0627 \u0628\u0627\u0644\u0639\u0627\u0644\u0645".encode(), "\u05e9\u05dc\u05d5\u05dd".encode(), "caf\u00e9 na\u00efve r\u00e9sum\u00e9".encode(),
    "e\u0301 combining".encode(), "\u2200x\u2208\u211d: x\u00b2 \u2265 0".encode(),
    # invalid UTF-8
    b"\x80", b"abc\xffdef", b"\xe4\xb8", b"trunc \xe4\xb8 then text", b"\xc3\x28 bad pair", b"\xf0\x9f\x98 cut emoji",
    b"\xfe\xfe\xff", b"ok\x80\x81\x82ok",
    # special-token text
    b"<|begin_of_text|>Hello", b"<|start_header_id|>user<|end_header_id|>\n\nHi!<|eot_id|>",
    b"x<|eot_id|>y<|eot_id|><|eot_id|>", b"<|eot_id", b"<|im_start|>system\nYou are helpful.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n",
    b"<|endoftext|>", b"text<|endoftext|>more text<|endoftext|>", b"<fim_prefix>def f():<fim_suffix>\n<fim_middle>",
    b"<|im_end|><|im_end|>", b"< |im_end| >", b"<|fake_token|>",
]


def llama_cpp_strings(root, vocab):
    """llama.cpp's own tokenizer test strings (models/ggml-vocab-*.gguf.inp)."""
    path = os.path.join(root, "models", f"ggml-vocab-{vocab}.gguf.inp")
    if not os.path.exists(path):
        return []
    parts = open(path, "rb").read().split(b"\n__ggml_vocab_test__\n")
    return [p for p in parts if p and b"__ggml_vocab_test__" not in p]


def llama_ids(binary, vocab_file, strings):
    cases = "".join(t.hex() + "\n" for t in strings)
    out = subprocess.run([binary, vocab_file], input=cases.encode(), capture_output=True, check=True).stdout.decode()
    lines = out.splitlines()
    assert len(lines) == 2 * len(strings), (vocab_file, len(lines))
    res = {}
    for k, text in enumerate(strings):
        for line in lines[2 * k:2 * k + 2]:
            add, ids = line.split("\t")
            res[(text, int(add))] = [int(x) for x in ids.split()]
    return res


def llama_tokenize(binary, vocab_file, text, add_special):
    with tempfile.NamedTemporaryFile(delete=False) as f:
        f.write(text)
        name = f.name
    try:
        cmd = [binary, "-m", vocab_file, "-f", name, "--ids", "--no-escape", "--log-disable"]
        if not add_special:
            cmd.append("--no-bos")
        out = subprocess.run(cmd, capture_output=True, check=True).stdout.decode().strip()
    finally:
        os.unlink(name)
    line = [l for l in out.splitlines() if l.startswith("[")][-1]
    return [int(x) for x in line.strip("[]").replace(",", " ").split()]


def main():
    root, ids_bin = sys.argv[1:3]
    tok_bin = sys.argv[3] if len(sys.argv) > 3 else None
    base = llama_cpp_strings(root, "llama-bpe")
    for vocab in VOCABS:
        vocab_file = f"ggml-vocab-{vocab}.gguf"
        strings = OURS + [s for s in base if s not in OURS]
        ids = llama_ids(ids_bin, vocab_file, strings)
        if tok_bin:
            for text in strings:
                for add in (1, 0):
                    assert llama_tokenize(tok_bin, vocab_file, text, add) == ids[(text, add)], (vocab, text, add)
        with open(f"{vocab}.expected", "w") as out:
            out.write(f"# ids from llama.cpp v0.5.0's tokenizer for {vocab_file}; made by make_expected.py (README.md)\n")
            for text in strings:
                for add in (1, 0):
                    out.write(f"{text.hex()}\t{add}\t{' '.join(map(str, ids[(text, add)]))}\n")
        print(vocab, len(strings), "strings", "(checked with llama-tokenize)" if tok_bin else "")


if __name__ == "__main__":
    main()
