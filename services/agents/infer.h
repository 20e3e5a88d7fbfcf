/* infer.h - the task type of a task, inferred from its title and
 * description by matching keywords (no LLM call).
 *
 * Each task type an agent claims (its task_types) is a keyword: a word
 * ("api") or a phrase whose words are joined by '-' or blanks
 * ("code-review" matches "code review" and "code-review"). Text and keywords
 * are compared case-insensitively, word by word, a keyword's last word also
 * matching with a trailing "s" ("tests" for "test"). The type with the most
 * occurrences wins; between equal counts the phrase of more words (the more
 * specific: "code-review" over "review"); a remaining tie, or no match,
 * infers nothing. Pure;
 * any thread. */
#ifndef VAPORA_AGENTS_INFER_H
#define VAPORA_AGENTS_INFER_H

#include <stddef.h>

/* Counts the occurrences of keyword in text (both as above). */
unsigned infer_count(const char *text, const char *keyword);

/* Picks among types[0..n) the one text mentions most. Returns its index, or
 * -1 when none is mentioned or two or more tie for the most. */
int infer_best(const char *text, const char *const *types, size_t n);

#endif
