/* pw_schema: the storage schema's names — collections and fields of the
 * documents the consumer writes and the metrics service reads — in one place,
 * so both services use the same strings. Document shapes are described in
 * docs/architecture.md ("Storage layout"). Names only: no code. */
#ifndef PW_SCHEMA_H
#define PW_SCHEMA_H

/* ---- collections --------------------------------------------------------- */
#define PW_COLL_TELEMETRY "telemetry"  /* raw readings */
#define PW_COLL_ALERTS "alerts"        /* raw alerts (their own dedupe gate) */
#define PW_COLL_TOKENS "ingest_tokens" /* dedupe gate of readings */
#define PW_COLL_ROLLUP_READINGS "rollup_readings"
#define PW_COLL_ROLLUP_ALERTS "rollup_alerts"
#define PW_COLL_DEVICE_DAY "rollup_device_day"    /* presence: device active on a day */
#define PW_COLL_CENSUS "rollup_devices"           /* device census per partition shard */
#define PW_COLL_PROGRESS "consumer_progress"      /* settled offsets, retention marks */
#define PW_COLL_SERIES_READINGS "series_readings" /* minute series per device/zone, type, hour */

/* ---- fields shared by several documents ---------------------------------- */
#define PW_F_ID "_id"
#define PW_F_VERSION "_v"  /* raised by every update (guarded writes) */
#define PW_F_HW "hw"       /* highest partition offset folded into the state */
#define PW_F_TP "tp"       /* "<topic>:<partition>" */
#define PW_F_STATE "state" /* BSON binary: packed iot.v1 storage message */
#define PW_F_COUNT "count"
#define PW_F_ORIGIN "origin" /* "<topic>:<partition>:<offset>" that stored it */

/* ---- raw readings and alerts ---------------------------------------------- */
#define PW_F_TS "ts"
#define PW_F_HOUR "hour" /* UTC hour start (date) */
#define PW_F_DAY "day"   /* UTC day "YYYY-MM-DD" */
#define PW_F_META "meta" /* MongoDB time-series metaField {device, zone, type} */
#define PW_F_DEVICE "device"
#define PW_F_ZONE "zone"
#define PW_F_TYPE "type"
#define PW_F_VALUE "value"
#define PW_F_UNIT "unit"
#define PW_F_RAW_VALUE "raw_value"
#define PW_F_RAW_UNIT "raw_unit"
/* the sensor's id as sent, only where normalization (trim, ASCII lower-case) changed it */
#define PW_F_DEVICE_ORIG "device_id_orig"
#define PW_F_ZONE_ORIG "zone_orig"
#define PW_F_TYPE_ORIG "type_orig"
#define PW_F_FIRMWARE "firmware"
#define PW_F_RECEIVED "received"
#define PW_F_CONSUMER "consumer"
#define PW_F_SOURCE "source"
#define PW_F_SEVERITY "severity"
#define PW_F_CODE "code"
#define PW_F_MESSAGE "message"

/* ---- ingest_tokens --------------------------------------------------------- */
#define PW_F_AT "at" /* UTC hour start of receipt (date): TTL and retention */

/* ---- rollup buckets (rollup_readings, rollup_alerts) ----------------------- */
#define PW_F_RES "res"     /* PW_RES_HOUR or PW_RES_DAY */
#define PW_F_START "start" /* bucket start (date): retention */
#define PW_F_MONTH "month" /* "YYYY-MM" (day buckets only) */
#define PW_RES_HOUR "hour"
#define PW_RES_DAY "day"

/* ---- minute series (series_readings) --------------------------------------- */
/* "<k>\x1f<key>\x1f<type>\x1f<YYYY-MM-DD>": the one field readers query */
#define PW_F_SK "sk"
#define PW_F_ZONES "zones" /* zone admission documents: the zones with series of their own */

/* ---- census (rollup_devices) ----------------------------------------------- */
#define PW_F_SHARD "shard"
#define PW_CENSUS_SHARDS 8 /* shards per partition */

/* ---- consumer_progress ------------------------------------------------------ */
#define PW_F_SETTLED "settled"   /* highest offset whose batch was completely written */
#define PW_F_UNTIL "until"       /* retention: hour start swept up to (exclusive) */
#define PW_F_LOOKBACK "lookback" /* retention: time (ms) of the last look-back pass */

#endif
