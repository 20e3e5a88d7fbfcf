/* test_list.c - unit tests for common/list.h: order, removal while
 * iterating, splicing, and the state of an unlinked node. */
#include "list.h"

#include <criterion/criterion.h>

typedef struct item {
    int v;
    list_t link;
} item_t;

static int s_values(list_t *h, int *out, int max)
{
    int n = 0;
    list_for_each(it, h) {
        if (n < max)
            out[n] = list_item(it, item_t, link)->v;
        n++;
    }
    return n;
}

Test(list, keeps_order_and_unlinks_in_place)
{
    list_t h = LIST_INIT(h);
    item_t it[5];
    cr_assert(list_empty(&h));
    cr_assert_null(list_first(&h));
    for (int i = 0; i < 5; i++) {
        it[i].v = i;
        list_init(&it[i].link);
        cr_assert_not(list_linked(&it[i].link));
        if (i == 0)
            list_push_front(&h, &it[i].link);
        else
            list_push_back(&h, &it[i].link);
    }
    int v[8];
    cr_assert_eq(s_values(&h, v, 8), 5);
    for (int i = 0; i < 5; i++)
        cr_assert_eq(v[i], i);
    list_remove(&it[2].link);
    cr_assert_not(list_linked(&it[2].link));
    list_remove(&it[2].link); /* an unlinked node stays harmless */
    cr_assert_eq(s_values(&h, v, 8), 4);
    cr_assert_eq(v[2], 3);
    list_for_each_safe(n, nx, &h) {
        if (list_item(n, item_t, link)->v % 2 == 0)
            list_remove(n);
    }
    cr_assert_eq(s_values(&h, v, 8), 2);
    cr_assert(v[0] == 1 && v[1] == 3);
    cr_assert_eq(list_item(list_pop_front(&h), item_t, link)->v, 1);
    cr_assert_eq(list_item(list_pop_front(&h), item_t, link)->v, 3);
    cr_assert_null(list_pop_front(&h));
}

Test(list, splice_moves_everything_in_order)
{
    list_t a = LIST_INIT(a), b = LIST_INIT(b);
    item_t it[4] = {{.v = 0}, {.v = 1}, {.v = 2}, {.v = 3}};
    list_push_back(&a, &it[0].link);
    list_push_back(&a, &it[1].link);
    list_push_back(&b, &it[2].link);
    list_push_back(&b, &it[3].link);
    list_splice(&a, &b);
    cr_assert(list_empty(&b));
    int v[8];
    cr_assert_eq(s_values(&a, v, 8), 4);
    for (int i = 0; i < 4; i++)
        cr_assert_eq(v[i], i);
    list_splice(&a, &b); /* an empty source changes nothing */
    cr_assert_eq(s_values(&a, v, 8), 4);
    list_t c = LIST_INIT(c);
    list_splice(&c, &a);
    cr_assert_eq(s_values(&c, v, 8), 4);
    cr_assert_eq(list_item(c.prev, item_t, link)->v, 3);
}
