/* test_http_peers.c - unit tests for common/http_peers.c: the address key
 * (IPv4, IPv4-mapped, an IPv6 /64), counting up to a limit, and a table
 * that keeps every count right through growth and deletions. */
#define _GNU_SOURCE
#include <arpa/inet.h>
#include <criterion/criterion.h>
#include <netinet/in.h>
#include <string.h>

#include "http_internal.h"

static uint64_t s_key4(const char *ip)
{
    struct sockaddr_in a = {.sin_family = AF_INET};
    cr_assert_eq(inet_pton(AF_INET, ip, &a.sin_addr), 1);
    uint64_t k;
    cr_assert(http__peer_key((struct sockaddr *)&a, &k));
    return k;
}

static uint64_t s_key6(const char *ip)
{
    struct sockaddr_in6 a = {.sin6_family = AF_INET6};
    cr_assert_eq(inet_pton(AF_INET6, ip, &a.sin6_addr), 1);
    uint64_t k;
    cr_assert(http__peer_key((struct sockaddr *)&a, &k));
    return k;
}

Test(http_peers, keys)
{
    cr_assert_neq(s_key4("127.0.0.1"), s_key4("127.0.0.2"));
    cr_assert_eq(s_key4("10.1.2.3"), s_key6("::ffff:10.1.2.3"));
    /* One /64 is one client; the next /64 another. */
    cr_assert_eq(s_key6("2001:db8:1:2::1"), s_key6("2001:db8:1:2:ffff::9"));
    cr_assert_neq(s_key6("2001:db8:1:2::1"), s_key6("2001:db8:1:3::1"));
    /* No IPv6 /64 takes an IPv4 key. */
    cr_assert_neq(s_key4("0.0.0.1"), s_key6("::1"));
    struct sockaddr sa = {.sa_family = AF_UNIX};
    uint64_t k;
    cr_assert_not(http__peer_key(&sa, &k));
}

Test(http_peers, limit_per_address)
{
    http_peers_t *t = http__peers_new();
    uint64_t a = s_key4("192.0.2.1"), b = s_key4("192.0.2.2");
    for (int i = 0; i < 3; i++)
        cr_assert(http__peer_take(t, a, 3));
    cr_assert_not(http__peer_take(t, a, 3), "a fourth connection at limit 3");
    cr_assert(http__peer_take(t, b, 3), "another address is still taken");
    cr_assert_eq(http__peer_count(t, a), 3);
    http__peer_release(t, a);
    cr_assert(http__peer_take(t, a, 3), "a slot freed is free again");
    for (int i = 0; i < 3; i++)
        http__peer_release(t, a);
    http__peer_release(t, b);
    cr_assert_eq(http__peer_count(t, a), 0);
    cr_assert_eq(http__peers_used(t), 0);
    http__peers_destroy(&t);
    cr_assert_null(t);
    http__peers_destroy(&t);
}

/* Thousands of addresses: the table grows; releasing every other one in a
 * scattered order (backward-shift deletion) loses no other count. */
Test(http_peers, counts_survive_growth_and_deletion)
{
    enum { N = 5000 };
    http_peers_t *t = http__peers_new();
    for (uint64_t i = 0; i < N; i++)
        for (uint64_t j = 0; j <= i % 3; j++)
            cr_assert(http__peer_take(t, 0xffffffff00000000ull | i, 10));
    cr_assert_eq(http__peers_used(t), N);
    for (uint64_t i = 0; i < N; i += 2) {
        uint64_t k = 0xffffffff00000000ull | ((i * 7919) % N);
        while (http__peer_count(t, k))
            http__peer_release(t, k);
    }
    size_t left = 0;
    for (uint64_t i = 0; i < N; i++) {
        unsigned c = http__peer_count(t, 0xffffffff00000000ull | i);
        left += c != 0;
        cr_assert(c == 0 || c == i % 3 + 1, "address %lu counts %u", (unsigned long)i,
                  c);
    }
    cr_assert_eq(http__peers_used(t), left);
    cr_assert_eq(left, N / 2, "%zu addresses left", left);
    http__peers_destroy(&t);
}
