/* list.h - an intrusive, circular, doubly linked list (libuv's uv__queue,
 * Linux's list_head): the links live inside the linked objects, so linking
 * allocates nothing and an object unlinks itself in O(1). Header only.
 *
 * A list is a list_t head, initialised with list_init (or LIST_INIT); an
 * object embeds a list_t member and is reached from it by list_item():
 *
 *     typedef struct conn { ...; list_t link; } conn_t;
 *     list_t conns; list_init(&conns);
 *     list_push_back(&conns, &c->link);
 *     list_for_each_safe(it, next, &conns) {
 *         conn_t *c = list_item(it, conn_t, link);
 *         ...
 *     }
 *
 * No locking: whoever owns the list serialises access to it. */
#ifndef VAPORA_LIST_H
#define VAPORA_LIST_H

#include <stdbool.h>
#include <stddef.h>

#include "base.h"

typedef struct list {
    struct list *next, *prev;
} list_t;

#define LIST_INIT(name) {&(name), &(name)}

/* The object of type `type` whose list_t member `member` is at node. */
#define list_item(node, type, member) container_of(node, type, member)

#define list_for_each(it, head) for (list_t *it = (head)->next; it != (head); it = it->next)
/* Safe against unlinking `it` inside the body. */
#define list_for_each_safe(it, nx, head)                                               \
    for (list_t *it = (head)->next, *nx = it->next; it != (head); it = nx, nx = it->next)

/* An empty list, or a node that is linked nowhere. */
static inline void list_init(list_t *h)
{
    h->next = h->prev = h;
}

static inline bool list_empty(const list_t *h)
{
    return h->next == h;
}

/* True when node (initialised with list_init) is on some list. */
static inline bool list_linked(const list_t *n)
{
    return n->next != n;
}

static inline void list__insert(list_t *n, list_t *prev, list_t *next)
{
    n->prev = prev;
    n->next = next;
    prev->next = n;
    next->prev = n;
}

static inline void list_push_back(list_t *h, list_t *n)
{
    list__insert(n, h->prev, h);
}

static inline void list_push_front(list_t *h, list_t *n)
{
    list__insert(n, h, h->next);
}

/* Unlinks n from its list and leaves it initialised (list_linked false). */
static inline void list_remove(list_t *n)
{
    n->prev->next = n->next;
    n->next->prev = n->prev;
    list_init(n);
}

/* The first node, or NULL when the list is empty. */
static inline list_t *list_first(const list_t *h)
{
    return list_empty(h) ? NULL : h->next;
}

/* Unlinks and returns the first node, or NULL when the list is empty. */
static inline list_t *list_pop_front(list_t *h)
{
    list_t *n = list_first(h);
    if (n)
        list_remove(n);
    return n;
}

/* Moves every node of from to the end of to, in order; from ends empty. */
static inline void list_splice(list_t *to, list_t *from)
{
    if (list_empty(from))
        return;
    list_t *first = from->next, *last = from->prev;
    first->prev = to->prev;
    to->prev->next = first;
    last->next = to;
    to->prev = last;
    list_init(from);
}

#endif
