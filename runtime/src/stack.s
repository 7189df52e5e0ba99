# Shadow-stack pointer access for the host's invoke_* wrappers (C cannot name the global).
	.globaltype __stack_pointer, i32

	.globl roam_stack_save
	.export_name roam_stack_save, roam_stack_save
	.type roam_stack_save,@function
roam_stack_save:
	.functype roam_stack_save () -> (i32)
	global.get __stack_pointer
	end_function

	.globl roam_stack_restore
	.export_name roam_stack_restore, roam_stack_restore
	.type roam_stack_restore,@function
roam_stack_restore:
	.functype roam_stack_restore (i32) -> ()
	local.get 0
	global.set __stack_pointer
	end_function
