// Runs once, when the data volume is empty (docker-entrypoint-initdb.d), as the root
// user. Creates the two application users of database "plantwatch": the consumer
// writes (and creates the time-series collection at its startup), metrics only reads.
// Passwords come from the Secret "mongodb-root" (see docs/deploy.md).
const admin = db.getSiblingDB("admin");
function ensureUser(name, password, role) {
  if (!password) {
    throw new Error("missing password for " + name);
  }
  if (admin.getUser(name)) {
    admin.updateUser(name, { pwd: password, roles: [{ role: role, db: "plantwatch" }] });
  } else {
    admin.createUser({ user: name, pwd: password, roles: [{ role: role, db: "plantwatch" }] });
  }
}
ensureUser("plantwatch-consumer", process.env.PW_CONSUMER_MONGO_PASSWORD, "readWrite");
ensureUser("plantwatch-metrics", process.env.PW_METRICS_MONGO_PASSWORD, "read");
