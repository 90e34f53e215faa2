/* Durations and sizes as the options and the configuration file write them: pure text <-> value,
 * shared by the option table (config.c) and the access sections (access.c). */
#ifndef H2T_UNITS_H
#define H2T_UNITS_H

#include <stddef.h>
#include <stdint.h>

/* Parses a duration: "30" (seconds), "1.5s", "250ms", "5m", "1h". Returns 0 or -EINVAL. */
int units_parse_duration(const char *s, uint64_t *ms);
/* Parses a size: "65536", "64k", "1m", "1g" (binary units). Returns 0 or -EINVAL. */
int units_parse_size(const char *s, uint64_t *out);
/* Writes |ms| / |v| in the shortest unit that is exact ("30s", "250ms"; "64k", "1m"). */
void units_format_duration(uint64_t ms, char *buf, size_t cap);
void units_format_size(uint64_t v, char *buf, size_t cap);

#endif
