/* bootstrap.h - the users a first start makes: `admin` (role owner) and
 * `agents` (role member: the identity the agents service calls the
 * backend with).
 *
 * DESIGN. Each is made once per database (recorded in it: deleted, it
 * stays deleted), with its configured password ([backend] admin_password,
 * agents_password) or, when that is empty, a random one written to
 * DATA_DIR/<name>-password (mode 0600, before the user is made, so the
 * user never exists with a password nobody has). A password is never
 * logged: the log says where the file is. Start-up only, under the
 * backend's set-up lock. */
#ifndef VAPORA_BACKEND_BOOTSTRAP_H
#define VAPORA_BACKEND_BOOTSTRAP_H

#include <stddef.h>

#include "store.h"

/* Makes admin and agents unless they were made before. The passwords may
 * be NULL or empty (generated). 0, or -EIO with a reason in err. */
int bootstrap_users(store_t *s, const char *data_dir, const char *admin_password,
                    const char *agents_password, char *err, size_t errlen);

#endif
