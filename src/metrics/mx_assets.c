/* mx_assets: lookup in the generated asset table. */
#include "mx_assets.h"

#include <string.h>

const mx_asset *mx_asset_find(const char *name)
{
    for (size_t i = 0; i < mx_asset_count; i++) {
        if (strcmp(mx_assets[i].name, name) == 0) {
            return &mx_assets[i];
        }
    }
    return NULL;
}
