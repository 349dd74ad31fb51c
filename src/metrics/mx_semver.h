/* mx_semver: ordering of firmware version strings by semantic versioning
 * (MAJOR.MINOR.PATCH[-PRERELEASE][+BUILD], optional leading "v", missing
 * minor/patch read as 0). Strings that are not versions sort below every
 * version and among themselves by byte order. */
#ifndef MX_SEMVER_H
#define MX_SEMVER_H

/* 1 if s parses as a semantic version, else 0. */
int mx_semver_valid(const char *s);

/* <0, 0 or >0 like strcmp: a older than, equal to (ignoring build metadata)
 * or newer than b. */
int mx_semver_cmp(const char *a, const char *b);

#endif
