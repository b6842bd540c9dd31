"""search: find the sentences that cover the question's words, let the local model pick among them.

1. Cut every document into sentences; each keeps its paragraph's heading (a log entry's date, a
   dictionary's headword), so "when" finds a date and "define X" a headword.
2. Weigh the question's words by how rare they are in the text (a word the text never uses
   weighs most) and score each sentence by the share of that weight it holds. A sentence must
   hold `MIN_COVERAGE` of it, and a date for "when", a number for "how many": what the text
   does not say cannot be covered, so absent facts come out as NONE rather than as a guess.
3. A word of the question the text never uses gets stand-ins: the text's own words nearest to it
   in meaning (`rank_by_meaning`, a sentence-embedding model: "died" finds "killed", "animal"
   "whale"), at least `WORD_SIMILARITY` alike and within `NEAR_BEST` of the nearest; a stand-in
   in a sentence covers the missing word's weight times its similarity, one stand-in a sentence. The sub-model is also asked for words a text answering
   the question would use (query expansion; a 135M model mostly repeats the question's words).
   Two missing words without a stand-in mean NONE.
4. Ask the sub-model to read the paragraphs holding the best sentences (`rank_passages` orders
   ties) and let each reply vote for the sentence it repeats; when stand-ins were needed, the
   sentence's similarity in meaning to the question weighs in too. The best-scored sentences answer.
5. Widening, bounded: when stand-ins were found but no sentence holds enough, the model reads the
   paragraphs of the next-best sentences (those holding `WIDEN_COVERAGE`), `WIDEN_READS` at most,
   with progress printed; a reply counts only if it copies one of those sentences.
The answer names its document when the context holds several. "NONE" when no sentence holds
enough. A REPL program sent after common.py; no root model writes it.
"""
# ruff: noqa: F821 -- context, QUESTION, llm_query, llm_query_batched, rank_passages,
# rank_by_meaning and FINAL are REPL names

USE_EXPANSION = True
USE_MEANING = True
USE_VOTES = True
READ_PASSAGES = 3
CANDIDATES = 6
WORD_SIMILARITY = 0.5
NEAR_BEST = 0.1
STAND_INS_PER_WORD = 3
MEANING_WEIGHT = 0.3
WIDEN_READS = 2
WIDEN_COVERAGE = 0.25

chunks, names, pages = document_chunks(context, 500, by_paragraph=True, with_pages=True)
several = len(set(names)) > 1
title = " ".join(text[:300] + " " + (name or "") for name, text in documents(context))
units = answer_units(chunks)
terms = answer_terms(QUESTION)
print(f"search: no root model; {len(units)} sentences in {len(chunks)} paragraphs; terms {terms}")
# A name the question asks about (Sydney, BRIDE) that the text never mentions: nothing to read.
missing_names = [n for n in named_terms(QUESTION) if not any(term_pattern(n).search(c) for c in chunks)]
if missing_names:
    print(f"search: the text never mentions {missing_names}; no sentence can answer")
    FINAL("NONE")
weights = term_weights(terms, units, QUESTION, title)
absent = [t for t in terms if not any(as_written(t, QUESTION).search(c) for c in chunks)]
stand_ins = {}
if USE_MEANING and absent:
    vocabulary = text_vocabulary(chunks, terms)
    # A name or a headword (ZEAL) has no stand-in: "zealously" belongs to another entry.
    named = set(named_terms(QUESTION))
    for term in [t for t in absent if t not in named]:
        try:
            near = rank_by_meaning(vocabulary, term, STAND_INS_PER_WORD)
        except RuntimeError as error:  # no embedding model here: the question's own words only
            print(f"search: no stand-ins by meaning ({error})")
            USE_MEANING = False
            break
        # Only the nearest few: "died" is "killed" (0.79) here, not "ended" (0.52) as well.
        found = [(vocabulary[i], s) for i, s in near if s >= max(WORD_SIMILARITY, near[0][1] - NEAR_BEST)]
        # A stand-in from the document's title weighs a third, as the title's own words do:
        # "vessel" as the title's "schooner" locates nothing.
        found = [(w, round(s / 3 if term_pattern(w).search(title) else s, 2)) for w, s in found]
        if found:
            stand_ins[term] = found
    print(f"search: the text never uses {absent}; its words nearest in meaning: {stand_ins}")
suggested_words = []
if USE_EXPANSION and absent:
    suggested = check_replies([llm_query(EXPAND_PROMPT.format(question=QUESTION))])[0]
    suggested_words = [
        w for w in suggested_terms(suggested, terms) if any(term_pattern(w).search(c) for c in chunks)
    ]
    print(f"search: words the model suggested that the text uses: {suggested_words}")
    # A suggested word stands in, at half weight, for a missing word nothing nearer stands in for.
    for term in absent:
        if term not in stand_ins and suggested_words:
            stand_ins[term] = [(w, 0.5) for w in suggested_words]
uncovered = [t for t in absent if t not in stand_ins]
# Two words of the question the text never uses, with nothing in their place: whatever sentence
# holds the rest answers another question ("How many passengers did the ship carry?").
if len(uncovered) > 1:
    print(f"search: the text never uses {uncovered}, nor words like them; no sentence can answer")
    FINAL("NONE")
total = sum(weights.values()) or 1.0


def score(unit):
    return min(1.0, coverage(unit, weights, QUESTION) + stand_in_credit(unit, stand_ins, weights) / total)


scored = sorted(
    [(score(u), i) for i, u in enumerate(units) if fits_question(u, QUESTION)], key=lambda p: (-p[0], p[1])
)
candidates = [(s, i) for s, i in scored[:CANDIDATES] if s >= MIN_COVERAGE]
if not candidates:
    best = scored[0][0] if scored else 0.0
    print(f"search: no sentence holds enough of the question's words (best {best:.0%})")
    widened = []
    if USE_MEANING and stand_ins and WIDEN_READS and scored:
        # Widening: the paragraphs of the next-best sentences, a few reads at most.
        nearest = list(dict.fromkeys(units[i][0] for s, i in scored if s >= WIDEN_COVERAGE))[:WIDEN_READS]
        for step, passage in enumerate(nearest, 1):
            print(f"search: widening {step}/{len(nearest)}: asking the model to read paragraph {passage}")
            reply = check_replies(
                [llm_query(EXTRACT_PROMPT.format(question=QUESTION, text=chunks[passage]))]
            )[0]
            widened += [
                (score(u), i)
                for i, u in enumerate(units)
                if u[0] == passage
                and fits_question(u, QUESTION)
                and score(u) >= WIDEN_COVERAGE
                and copied_from(clean_answer(reply), u[2])
            ]
    if not widened:
        print("search: the text does not say")
        FINAL("NONE")
    candidates = sorted(widened, key=lambda p: (-p[0], p[1]))[:1]
    print(f"search: widening found a sentence the model copied ({candidates[0][0]:.0%} of the weight)")
# Paragraph order among equal sentences: BM25 over the question and its stand-ins.
extra_words = [w for options in stand_ins.values() for w, _ in options]
order = {
    index: rank
    for rank, (index, _) in enumerate(rank_passages(chunks, " ".join([QUESTION] + extra_words), 50))
}
candidates.sort(key=lambda p: (-p[0], order.get(units[p[1]][0], len(order)), p[1]))
agreement = {}
if USE_VOTES:
    passages = list(dict.fromkeys(units[i][0] for _, i in candidates))[:READ_PASSAGES]
    print(
        f"search: {len(candidates)} sentences hold the question's words; asking the model to read {len(passages)} paragraphs"
    )
    replies = check_replies(
        llm_query_batched([EXTRACT_PROMPT.format(question=QUESTION, text=chunks[p]) for p in passages])
    )
    for passage, reply in zip(passages, replies, strict=True):
        for _, i in candidates:
            if units[i][0] == passage:
                agreement[i] = reply_agreement(reply, units[i], QUESTION)
meaning = {}
if USE_MEANING and stand_ins and len(candidates) > 1:
    texts = [unit_answer(units[i]) for _, i in candidates]
    meaning = {candidates[j][1]: s for j, s in rank_by_meaning(texts, QUESTION, len(texts))}
    print(
        f"search: the candidates' similarity to the question: {[round(meaning[i], 2) for _, i in candidates]}"
    )
final = sorted(
    [(s + 0.3 * agreement.get(i, 0.0) + MEANING_WEIGHT * meaning.get(i, 0.0), i) for s, i in candidates],
    key=lambda p: (-p[0], order.get(units[p[1]][0], len(order)), p[1]),
)
top = final[0][0]
kept = [
    (
        unit_answer(units[i]),
        names[units[i][0]],
        page_of(unit_answer(units[i]), chunks[units[i][0]], pages[units[i][0]]),
    )
    for s, i in final
    if s >= top - 0.02
][:3]
found = unique(with_sources(kept, several))
print(f"search: {len(found)} answers from the best-scored sentences ({top:.0%})")
FINAL("\n".join(found))
