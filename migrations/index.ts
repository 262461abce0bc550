import type { Knex } from 'knex';
import * as initial from './0001_initial.js';
import * as accounts from './0002_accounts.js';
import * as e2ee from './0004_e2ee.js';
import * as media from './0006_media.js';
import * as edus from './0005_edus.js';
import * as push from './0007_push.js';
import * as relations from './0009_relations.js';
import * as directory from './0008_directory.js';
import * as federation from './0010_federation.js';
import * as federationOutbox from './0011_federation_outbox.js';
import * as remoteDevices from './0012_remote_devices.js';
import * as appserviceQueue from './0014_appservice_queue.js';
import * as serverIdentity from './0015_server_identity.js';
import * as remoteMedia from './0016_remote_media.js';
import * as deviceListAudience from './0017_device_list_audience.js';
import * as appserviceRoomList from './0018_appservice_room_list.js';
import * as serverKeyResponses from './0019_server_key_responses.js';
import * as roomPeeks from './0024_room_peeks.js';
import * as mediaAuthenticated from './0022_media_authenticated.js';
import * as threepidBindings from './0023_threepid_bindings.js';
import * as deactivationJobs from './0020_deactivation_jobs.js';
import * as retentionPurges from './0021_retention_purges.js';
import * as eventExpiry from './0028_event_expiry.js';
import * as slidingSync from './0025_sliding_sync.js';
import * as adminApi from './0026_admin_api.js';

interface Migration {
  up(knex: Knex): Promise<void>;
  down(knex: Knex): Promise<void>;
}

// Migrations are listed here rather than discovered on disk so they load the same way under tsx,
// vitest and compiled output. Append new ones; never reorder or edit a released one.
const migrations: Array<[string, Migration]> = [
  ['0001_initial', initial],
  ['0002_accounts', accounts],
  ['0004_e2ee', e2ee],
  ['0005_edus', edus],
  ['0006_media', media],
  ['0007_push', push],
  ['0009_relations', relations],
  ['0008_directory', directory],
  ['0010_federation', federation],
  ['0011_federation_outbox', federationOutbox],
  ['0012_remote_devices', remoteDevices],
  ['0014_appservice_queue', appserviceQueue],
  ['0015_server_identity', serverIdentity],
  ['0016_remote_media', remoteMedia],
  ['0017_device_list_audience', deviceListAudience],
  ['0018_appservice_room_list', appserviceRoomList],
  ['0019_server_key_responses', serverKeyResponses],
  ['0024_room_peeks', roomPeeks],
  ['0022_media_authenticated', mediaAuthenticated],
  ['0023_threepid_bindings', threepidBindings],
  ['0020_deactivation_jobs', deactivationJobs],
  ['0021_retention_purges', retentionPurges],
  ['0028_event_expiry', eventExpiry],
  ['0025_sliding_sync', slidingSync],
  ['0026_admin_api', adminApi],
];

export const migrationSource: Knex.MigrationSource<Migration> = {
  getMigrations: async () => migrations.map(([, m]) => m),
  getMigrationName: (m) => migrations.find(([, x]) => x === m)![0],
  getMigration: async (m) => m,
};
