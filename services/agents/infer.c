/* infer.c - see infer.h. The text is cut into words once (a lower-case
 * copy, each word NUL-terminated in place); each keyword is then matched
 * against that list, so a long description costs one pass. */
#include "infer.h"

#include <ctype.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "alloc.h"

#define INFER_WORDS 8
#define INFER_WORD 48

typedef struct words {
    char *buf;   /* the text, lower-cased, words NUL-terminated */
    char **w;
    size_t n;
} words_t;

static void s_words(const char *text, words_t *out)
{
    size_t len = text ? strlen(text) : 0, cap = 16;
    out->buf = xmalloc(len + 1);
    out->w = xmalloc(cap * sizeof *out->w);
    out->n = 0;
    bool in = false;
    for (size_t i = 0; i <= len; i++) {
        unsigned char c = i < len ? (unsigned char)text[i] : 0;
        bool word = c && isalnum(c);
        out->buf[i] = word ? (char)tolower(c) : '\0';
        if (word && !in) {
            if (out->n == cap)
                out->w = xrealloc(out->w, (cap *= 2) * sizeof *out->w);
            out->w[out->n++] = &out->buf[i];
        }
        in = word;
    }
}

static void s_words_free(words_t *t)
{
    free(t->buf);
    free(t->w);
}

/* A keyword's words (at most INFER_WORDS of INFER_WORD bytes). */
typedef struct phrase {
    char w[INFER_WORDS][INFER_WORD];
    size_t n;
} phrase_t;

static void s_phrase(const char *kw, phrase_t *p)
{
    p->n = 0;
    const unsigned char *s = (const unsigned char *)(kw ? kw : "");
    while (p->n < INFER_WORDS && *s) {
        while (*s && !isalnum(*s))
            s++;
        size_t k = 0;
        while (*s && isalnum(*s)) {
            if (k + 1 < INFER_WORD)
                p->w[p->n][k++] = (char)tolower(*s);
            s++;
        }
        p->w[p->n][k] = '\0';
        if (k)
            p->n++;
    }
}

static bool s_word_eq(const char *text_word, const char *kw, bool last)
{
    if (strcmp(text_word, kw) == 0)
        return true;
    size_t a = strlen(text_word), b = strlen(kw);
    return last && a == b + 1 && text_word[b] == 's' && strncmp(text_word, kw, b) == 0;
}

static unsigned s_count(const words_t *t, const phrase_t *kw)
{
    unsigned count = 0;
    for (size_t i = 0; kw->n && i + kw->n <= t->n; i++) {
        bool match = true;
        for (size_t j = 0; match && j < kw->n; j++)
            match = s_word_eq(t->w[i + j], kw->w[j], j + 1 == kw->n);
        count += match;
    }
    return count;
}

unsigned infer_count(const char *text, const char *keyword)
{
    phrase_t kw;
    s_phrase(keyword, &kw);
    if (!text || kw.n == 0)
        return 0;
    words_t t;
    s_words(text, &t);
    unsigned n = s_count(&t, &kw);
    s_words_free(&t);
    return n;
}

int infer_best(const char *text, const char *const *types, size_t n)
{
    words_t t;
    s_words(text, &t);
    int best = -1;
    unsigned top = 0;
    size_t top_words = 0;
    bool tie = false;
    for (size_t i = 0; i < n; i++) {
        phrase_t kw;
        s_phrase(types[i], &kw);
        unsigned c = s_count(&t, &kw);
        if (c == 0 || c < top || (c == top && kw.n < top_words))
            continue;
        if (c == top && kw.n == top_words) {
            tie = tie || strcmp(types[i], types[best]) != 0;
            continue;
        }
        top = c;
        top_words = kw.n;
        best = (int)i;
        tie = false;
    }
    s_words_free(&t);
    return tie ? -1 : best;
}
