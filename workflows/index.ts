// Every workflow type the worker registers; the exported name is the workflow type.
import type * as contract from '../contract/definitions';
import { AgentWorkflow } from './agent';
import { ChatWorkflow } from './chat';
import { CrewWorkflow } from './crew';
import { MetaSupervisorWorkflow } from './meta';
import { ReminderChangeWorkflow, ReminderFireWorkflow } from './reminder';
import { RoutedTaskWorkflow } from './routed-task';
import { TaskWorkflow } from './task';

export {
  AgentWorkflow,
  TaskWorkflow,
  ChatWorkflow,
  CrewWorkflow,
  ReminderChangeWorkflow,
  ReminderFireWorkflow,
  MetaSupervisorWorkflow,
  RoutedTaskWorkflow,
};

// The client starts these by name with the contract's signatures: a mismatch fails to compile here.
AgentWorkflow satisfies contract.AgentWorkflowType;
TaskWorkflow satisfies contract.TaskWorkflowType;
ChatWorkflow satisfies contract.ChatWorkflowType;
CrewWorkflow satisfies contract.CrewWorkflowType;
MetaSupervisorWorkflow satisfies contract.MetaSupervisorWorkflowType;
ReminderFireWorkflow satisfies contract.ReminderFireWorkflowType;
ReminderChangeWorkflow satisfies contract.ReminderChangeWorkflowType;
RoutedTaskWorkflow satisfies contract.RoutedTaskWorkflowType;
