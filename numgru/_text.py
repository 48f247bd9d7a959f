"""The language model's text handling: tokens, documents, the vocabulary and token ids, and
the layout of the training text in parallel streams and windows.

Shape legend: B rows of a window (stretches of one document within one stream), T steps per
window (``bptt``), S parallel streams.

A token is a character (level="char"), a word or a punctuation mark (level="word":
:data:`WORD_RE`), or an integer token id given by the user (level="tokens"). The vocabulary
maps each token to an id, its row in the model's embedding and decoder; ``UNK`` stands for the
tokens left out of it.
"""

import re
from collections import Counter
from numbers import Integral

import numpy as np

UNK = "<unk>"
# level="word": a word is a run of letters, digits and underscores; every other non-space
# character is a token of its own
WORD_RE = re.compile(r"\w+|[^\w\s]")


def tokenize(text, level):
    """The tokens of ``text`` (a str): its characters (char) or its words and punctuation
    marks (word)."""
    if level == "char":
        return list(text)
    return WORD_RE.findall(text)


def documents(X, level, what="X"):
    """X (a text, a list of texts, or for level="tokens" token ids: :func:`token_documents`) as
    a list of token lists (char/word) or int64 arrays (tokens)."""
    if level == "tokens":
        return token_documents(X, what)
    if isinstance(X, str):
        docs = [X]
    elif isinstance(X, (bytes, bytearray)):
        raise TypeError(f"{what} must be str or a list of str, got bytes; decode it first "
                        "(e.g. X.decode('utf-8'))")
    elif isinstance(X, np.ndarray) and X.dtype.kind in "UO" and X.ndim == 1:
        docs = list(X)
    elif isinstance(X, (list, tuple)):
        docs = list(X)
    else:
        raise TypeError(f"{what} must be a str or a list of str for level={level!r}, "
                        f"got {type(X).__name__}")
    for i, d in enumerate(docs):
        if not isinstance(d, str):
            raise TypeError(f"{what}[{i}] must be a str for level={level!r}, got "
                            f"{type(d).__name__}")
    return [tokenize(d, level) for d in docs]


def token_documents(X, what):
    """Token ids (a sequence of ints: one document; or a list of such sequences) as a list of
    int64 arrays, refused (TypeError, ValueError) unless every id is an integer in
    [0, 2**63)."""
    if isinstance(X, str):
        raise TypeError(f"{what} must be integer token ids for level='tokens', got a str; "
                        "use level='char' or 'word' for text")
    if isinstance(X, np.ndarray) and X.ndim == 1 and X.dtype.kind != "O":
        seqs = [X]
    else:
        try:
            seqs = list(X)
        except TypeError:
            raise TypeError(f"{what} must be a sequence of int ids or a list of them, got "
                            f"{type(X).__name__}") from None
        if seqs and all(isinstance(s, (Integral, np.integer)) for s in seqs):
            seqs = [np.asarray(seqs)]      # one flat sequence of ids: one document
    docs = []
    for i, s in enumerate(seqs):
        try:
            arr = np.asarray(s)
        except (ValueError, TypeError) as exc:
            raise ValueError(f"{what}[{i}] could not be read as token ids: {exc}") from exc
        if arr.ndim != 1:
            raise ValueError(f"{what}[{i}] must be a 1-D sequence of token ids, got shape "
                             f"{arr.shape}")
        if arr.size and arr.dtype.kind not in "iub":
            if arr.dtype.kind == "f" and np.isfinite(arr).all() and (arr == np.round(arr)).all():
                pass
            else:
                raise ValueError(f"{what}[{i}] must hold integer token ids, got dtype "
                                 f"{arr.dtype}")
        if arr.size and arr.dtype.kind == "u" and arr.max() > np.iinfo(np.int64).max:
            raise ValueError(f"{what}[{i}] holds the token id {int(arr.max())}, larger than "
                             f"the largest token id numgru takes, 2**63 - 1")
        arr = arr.astype(np.int64)
        if arr.size and arr.min() < 0:
            raise ValueError(f"{what}[{i}] holds the negative token id {int(arr.min())}")
        docs.append(arr)
    return docs


def build_vocabulary(docs, level, min_frequency, max_vocabulary):
    """``(vocabulary, counts)`` of the documents: for char/word the tokens seen at least
    ``min_frequency`` times (at most ``max_vocabulary``, the most frequent, with ``UNK``
    counted), sorted, after ``UNK`` (id 0) when a token is left out or level="word"; for
    tokens the ids that occur, in increasing order. ``counts``: the occurrences of each
    (those of the tokens left out count for ``UNK``)."""
    if level == "tokens":
        # the ids that occur, in increasing order: the size of the model follows the
        # number of distinct ids, never the largest one (ids [0, 3_000_000] make 2 rows)
        ids, counts = np.unique(np.concatenate(docs + [np.zeros(0, np.int64)]),
                                return_counts=True)
        return [int(t) for t in ids], counts.astype(np.int64)
    counter = Counter()
    for d in docs:
        counter.update(d)
    items = sorted(counter.items(), key=lambda kv: (-kv[1], kv[0]))   # frequent first
    kept = [(tok, c) for tok, c in items if c >= min_frequency]
    need_unk = level == "word" or len(kept) < len(items)
    limit = max_vocabulary
    if limit is not None and len(kept) + need_unk > limit:
        need_unk = True
        kept = kept[: limit - 1]
    tokens = sorted(tok for tok, _ in kept)
    vocab = ([UNK] if need_unk else []) + tokens
    index = {tok: i for i, tok in enumerate(vocab)}
    counts = np.zeros(len(vocab), np.int64)
    for tok, c in counter.items():
        counts[index.get(tok, 0)] += c
    return vocab, counts


def token_ids(tokens, index, what):
    """char/word: the ids of ``tokens`` by ``index`` (token -> id, :func:`token_index`), an
    unknown token as ``UNK``; ValueError when there is one and the vocabulary has no ``UNK``."""
    unk = index.get(UNK)
    ids = [index.get(tok, unk) for tok in tokens]
    if unk is None and any(i is None for i in ids):
        unseen = sorted({tok for tok, i in zip(tokens, ids) if i is None})
        raise ValueError(f"{what} holds {len(unseen)} token(s) not in the vocabulary "
                         f"{unseen[:10]!r}{' ...' if len(unseen) > 10 else ''}, and this "
                         f"model has no {UNK!r} token (none was needed at fit); fit on a "
                         f"text that contains them, or with min_frequency/max_vocabulary "
                         f"that keep an {UNK!r} token")
    return np.asarray(ids, dtype=np.int64)


def rows_of_token_ids(tokens, known, rows, what):
    """level="tokens": the model's rows of the token ids ``tokens``, given ``known`` (the
    vocabulary's ids, sorted) and ``rows`` (their rows, :func:`token_lookup`); ValueError for
    an id that is not in the vocabulary."""
    V = len(known)
    ids = np.asarray(tokens, dtype=np.int64)
    if ids.size == 0:
        return ids
    pos = np.minimum(np.searchsorted(known, ids), V - 1)
    found = known[pos] == ids
    if not found.all():
        unseen = np.unique(ids[~found])
        raise ValueError(f"{what} holds {unseen.size} token id(s) not in the vocabulary "
                         f"{unseen[:10].tolist()}{' ...' if unseen.size > 10 else ''}: "
                         f"this model knows the {V} ids seen at fit (from "
                         f"{int(known[0])} to {int(known[-1])}); fit on token ids that "
                         "include them")
    return rows[pos].astype(np.int64)


def token_index(vocabulary):
    """char/word: token -> id (its index in ``vocabulary``)."""
    return {tok: i for i, tok in enumerate(vocabulary)}


def token_lookup(vocabulary):
    """level="tokens": ``(sorted token ids, their rows)`` of ``vocabulary``."""
    tokens = np.asarray(vocabulary, dtype=np.int64)
    order = np.argsort(tokens, kind="stable")
    return tokens[order], order


def check_vocabulary(vocabulary, level):
    """``vocabulary`` as a list, refused (ValueError) unless its tokens are what ``level``
    reads: strings (char, word) or token ids, integers in [0, 2**63) (tokens)."""
    try:
        vocabulary = list(vocabulary)
    except TypeError:
        raise ValueError(f"vocabulary must be a list of tokens, got "
                         f"{type(vocabulary).__name__}") from None
    if level == "tokens":
        bad = [t for t in vocabulary if isinstance(t, (bool, np.bool_))
               or not isinstance(t, (Integral, np.integer)) or not 0 <= t < 2 ** 63]
        if bad:
            raise ValueError(f"the vocabulary of a level='tokens' model holds token ids, "
                             f"integers in [0, 2**63); got {bad[:5]!r}")
        return [int(t) for t in vocabulary]
    bad = [t for t in vocabulary if not isinstance(t, str)]
    if bad:
        raise ValueError(f"the vocabulary of a level={level!r} model holds strings; got "
                         f"{bad[:5]!r}")
    return [str(t) for t in vocabulary]


# ---------------------------------------------------------------------------------------------
# Streams, pieces and windows
# ---------------------------------------------------------------------------------------------


def split_tail(docs, fraction):
    """(train, validation): the last ``fraction`` of the tokens, whole documents from the end
    (the document where the cut falls is split in two, each part its own document)."""
    total = sum(len(d) for d in docs)
    n_val = max(2, int(round(total * fraction)))
    train, val = list(docs), []
    while n_val > 0 and train:
        last = train.pop()
        if len(last) <= n_val:
            val.insert(0, last)
            n_val -= len(last)
        else:
            cut = len(last) - n_val
            train.append(last[:cut])
            val.insert(0, last[cut:])
            n_val = 0
    return train, val


def streams(docs, n_streams):
    """PyTorch's ``batchify`` over documents: ``(text, starts, ends, doc_ends)``.

    ``text`` is the documents' ids one after the other; stream ``s`` is ``text[starts[s]:
    ends[s]]``, the streams of equal length (the first ``len(text) % n_streams`` one token
    longer; no token dropped); ``doc_ends`` is the sorted end offset of every document in
    ``text``, where the state resets.
    """
    docs = [np.asarray(d, np.int64) for d in docs if len(d)]
    text = np.concatenate(docs) if docs else np.zeros(0, np.int64)
    doc_ends = np.cumsum([len(d) for d in docs]).astype(np.int64)
    n = min(n_streams, max(len(text) // 2, 1))     # a stream needs two tokens to predict one
    size, extra = divmod(len(text), n)
    lens = np.full(n, size, np.int64)
    lens[:extra] += 1
    ends = np.cumsum(lens)
    return text, ends - lens, ends, doc_ends


def windows(text, starts, ends, doc_ends, bptt):
    """Yield ``(ids, targets, lengths, stream, carried, carries)`` per window of ``bptt`` steps.

    Window k covers steps ``[k*bptt, (k+1)*bptt)`` of every stream (each step predicts the
    next token of its stream). Its rows are the stretches of one document within one stream:
    a stream whose window holds a document end is split there, the next document's stretch
    getting a row of its own that starts from a zero state; the last token of a document
    predicts nothing (the next document is not its continuation), and neither does a stream's
    last token. ``stream`` is each row's stream, ``carried`` whether its state comes from the
    stream's previous window, ``carries`` whether its final state goes on to the next one.
    """
    n_steps = int((ends - starts).max()) - 1 if len(starts) else 0
    for a in range(0, max(n_steps, 0), bptt):
        rows = []                      # (first input, length, stream, carried, carries)
        for s in range(len(starts)):
            lo = int(starts[s]) + a                               # first input of the window
            hi = min(lo + bptt, int(ends[s]) - 1)                 # one past its last input
            pos = lo
            while pos < hi:
                d = int(np.searchsorted(doc_ends, pos, side="right"))  # the document at pos
                doc_start = int(doc_ends[d - 1]) if d else 0
                last = int(doc_ends[d]) - 1          # its last token, which predicts nothing
                stop = min(hi, last)
                if stop > pos:
                    carried = pos == lo and pos > doc_start and pos > starts[s]
                    carries = stop == hi and hi < last
                    rows.append((pos, stop - pos, s, carried, carries))
                pos = stop if stop == hi else last + 1
        if not rows:
            continue
        lengths = np.array([r[1] for r in rows], np.int64)
        T = int(lengths.max())
        ids = np.zeros((len(rows), T), np.int64)
        targets = np.zeros((len(rows), T), np.int64)
        for r, (pos, L, _, _, _) in enumerate(rows):
            ids[r, :L] = text[pos:pos + L]
            targets[r, :L] = text[pos + 1:pos + 1 + L]
        yield (ids, targets, lengths, np.array([r[2] for r in rows], np.int64),
               np.array([r[3] for r in rows], bool), np.array([r[4] for r in rows], bool))
