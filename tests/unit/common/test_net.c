/* test_net.c - unit tests for common/net.c: address parsing. */
#include "net.h"

#include <criterion/criterion.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

Test(net, split_addr_forms)
{
    char host[64];
    int port = 0;
    cr_assert_eq(net_split_addr("0.0.0.0:8001", host, sizeof host, &port), 0);
    cr_assert_str_eq(host, "0.0.0.0");
    cr_assert_eq(port, 8001);
    cr_assert_eq(net_split_addr("[::1]:9", host, sizeof host, &port), 0);
    cr_assert_str_eq(host, "::1");
    cr_assert_eq(port, 9);
    cr_assert_eq(net_split_addr(":80", host, sizeof host, &port), 0);
    cr_assert_str_eq(host, "");
    cr_assert_eq(net_split_addr("localhost", host, sizeof host, &port), -EINVAL);
    cr_assert_eq(net_split_addr("h:0", host, sizeof host, &port), 0);
    cr_assert_eq(port, 0);
    cr_assert_eq(net_split_addr("h:-1", host, sizeof host, &port), -EINVAL);
    cr_assert_eq(net_split_addr("h:70000", host, sizeof host, &port), -EINVAL);
    cr_assert_eq(net_split_addr("[::1:80", host, sizeof host, &port), -EINVAL);
}
