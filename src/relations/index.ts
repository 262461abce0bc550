import type { RoomService } from '../rooms/roomService.js';
import type { ServiceDeps } from '../serviceDeps.js';
import { detectSearchEngine } from '../storage/repositories/search.js';
import { SearchService } from '../search/searchService.js';
import { EventIndexer } from './indexer.js';
import { RelationService } from './relationService.js';

export { RelationService } from './relationService.js';
export { SearchService } from '../search/searchService.js';

/**
 * Relations, threads, bundled aggregations and search, wired to the rooms service: committed writes feed
 * the indexer, every RoomReader.format() gets bundled aggregations, and unindexed history is indexed at start.
 */
export async function createRelations(deps: ServiceDeps, rooms: RoomService): Promise<{ relations: RelationService; search: SearchService }> {
  const engine = await detectSearchEngine(deps.db.knex, deps.db.dialect);
  const indexer = new EventIndexer(deps, engine);
  rooms.onCommitted((result) => indexer.onCommitted(result));
  indexer.start();
  const relations = new RelationService({ ...deps, rooms }, indexer);
  rooms.reader.setAggregator((events, viewer, opts) => relations.aggregate(events, viewer, opts));
  return { relations, search: new SearchService({ ...deps, rooms }, engine, indexer) };
}
