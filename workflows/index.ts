// Every workflow type the worker registers; the exported name is the workflow type.
export { AgentWorkflow } from './agent';
export { TaskWorkflow } from './task';
export { ChatWorkflow } from './chat';
export { CrewWorkflow } from './crew';
export { ReminderChangeWorkflow, ReminderFireWorkflow } from './reminder';
export { MetaSupervisorWorkflow } from './meta';
