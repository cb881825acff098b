// Every workflow type the worker registers; the exported name is the workflow type.
export { AgentWorkflow } from './agent';
export { TaskWorkflow } from './task';
export { ChatWorkflow } from './chat';
export { CrewWorkflow } from './crew';
export { MetaSupervisorWorkflow } from './meta';
