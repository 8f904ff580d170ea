/**
 * The demo's scenarios, one per seed document and one for leases (jobs); each example app
 * exports its own from `examples/<name>/demo.ts`.
 */
import { scenario as carts } from '../carts/demo.js';
import { scenario as gamification } from '../gamification/demo.js';
import { scenario as inventory } from '../inventory/demo.js';
import { scenario as jobs } from '../jobs/demo.js';
import { scenario as ticketing } from '../ticketing/demo.js';
import type { DemoScenario } from './scenario.js';

export const scenarios: readonly DemoScenario[] = [carts, inventory, gamification, ticketing, jobs];
