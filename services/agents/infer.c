/* infer.c - see infer.h. */
#include "infer.h"

#include <ctype.h>
#include <stdbool.h>
#include <string.h>

/* Copies the next word of *sp (ASCII letters and digits, lower-cased) into
 * w and advances *sp past it. Returns its length, 0 at the end. */
static size_t s_next_word(const char **sp, char *w, size_t cap)
{
    const unsigned char *s = (const unsigned char *)*sp;
    while (*s && !isalnum(*s))
        s++;
    size_t n = 0;
    while (*s && isalnum(*s)) {
        if (n + 1 < cap)
            w[n++] = (char)tolower(*s);
        s++;
    }
    w[n] = '\0';
    *sp = (const char *)s;
    return n;
}

#define INFER_WORDS 8
#define INFER_WORD 48

typedef struct phrase {
    char w[INFER_WORDS][INFER_WORD];
    size_t n;
} phrase_t;

static void s_split(const char *s, phrase_t *p)
{
    p->n = 0;
    while (p->n < INFER_WORDS && s_next_word(&s, p->w[p->n], INFER_WORD))
        p->n++;
}

static bool s_word_eq(const char *text_word, const char *kw, bool last)
{
    if (strcmp(text_word, kw) == 0)
        return true;
    size_t a = strlen(text_word), b = strlen(kw);
    return last && a == b + 1 && text_word[b] == 's' && strncmp(text_word, kw, b) == 0;
}

unsigned infer_count(const char *text, const char *keyword)
{
    phrase_t kw;
    s_split(keyword ? keyword : "", &kw);
    if (!text || kw.n == 0)
        return 0;
    /* A sliding window of the last kw.n words of the text. */
    char win[INFER_WORDS][INFER_WORD];
    size_t seen = 0;
    unsigned count = 0;
    const char *s = text;
    char w[INFER_WORD];
    while (s_next_word(&s, w, sizeof w)) {
        memmove(win[0], win[1], (INFER_WORDS - 1) * INFER_WORD);
        memcpy(win[INFER_WORDS - 1], w, INFER_WORD);
        if (++seen < kw.n)
            continue;
        bool match = true;
        for (size_t i = 0; match && i < kw.n; i++)
            match = s_word_eq(win[INFER_WORDS - kw.n + i], kw.w[i], i + 1 == kw.n);
        count += match;
    }
    return count;
}

static size_t s_words(const char *kw)
{
    phrase_t p;
    s_split(kw, &p);
    return p.n;
}

int infer_best(const char *text, const char *const *types, size_t n)
{
    int best = -1;
    unsigned top = 0;
    size_t top_words = 0;
    bool tie = false;
    for (size_t i = 0; i < n; i++) {
        unsigned c = infer_count(text, types[i]);
        size_t words = s_words(types[i]);
        if (c == 0 || c < top || (c == top && words < top_words))
            continue;
        if (c == top && words == top_words) {
            tie = tie || strcmp(types[i], types[best]) != 0;
            continue;
        }
        top = c;
        top_words = words;
        best = (int)i;
        tie = false;
    }
    return tie ? -1 : best;
}
