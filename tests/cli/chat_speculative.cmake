# `dsv4 chat` with MTP drafting (run with cmake -P; DSV4, MODEL and WORK given with -D): later
# turns, which resume the model's state, draft too, and greedy replies are those of one-token
# decoding (--no-speculative), turn for turn.
file(WRITE ${WORK}/chat_speculative_in.txt "Hello\nHow are you\nTell me more\n")
function(run_chat out err)
  execute_process(COMMAND ${DSV4} chat -m ${MODEL} --temp 0 -n 8 ${ARGN}
                  INPUT_FILE ${WORK}/chat_speculative_in.txt
                  OUTPUT_VARIABLE o ERROR_VARIABLE e RESULT_VARIABLE rc)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "chat ${ARGN} failed (${rc}): ${e}")
  endif()
  set(${out} "${o}" PARENT_SCOPE)
  set(${err} "${e}" PARENT_SCOPE)
endfunction()

run_chat(spec spec_err)
run_chat(plain plain_err --no-speculative)
foreach(turn 2 3)
  if(NOT spec_err MATCHES "turn ${turn}: [^\n]*; MTP acceptance [0-9.]+% \\([0-9]+ of [1-9][0-9]* drafts\\)")
    message(FATAL_ERROR "turn ${turn} did not draft:\n${spec_err}")
  endif()
endforeach()
if(plain_err MATCHES "MTP acceptance")
  message(FATAL_ERROR "--no-speculative drafted:\n${plain_err}")
endif()
if(NOT spec STREQUAL plain)
  message(FATAL_ERROR "replies differ with drafting:\n${spec}\nwithout:\n${plain}")
endif()
