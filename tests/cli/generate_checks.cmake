# `dsv4 generate` end to end (run with cmake -P; DSV4, MODEL and TEXT given with -D):
#  * greedy (--temp 0) output is the same with and without MTP drafting, and twice the same;
#  * seeded sampling gives the same tokens for one seed twice;
#  * the first greedy token is `eval`'s top-1 at the last prompt position (same model, numerics);
#  * the JSON object has text, tokens, prompt_tps, gen_tps and acceptance_rate, and text is the
#    detokenized token_ids; -f FILE reads the prompt from a file.
function(run_json out)
  execute_process(COMMAND ${DSV4} generate -m ${MODEL} ${ARGN} --json
                  OUTPUT_VARIABLE json RESULT_VARIABLE rc ERROR_VARIABLE err)
  if(NOT rc EQUAL 0)
    message(FATAL_ERROR "generate ${ARGN} failed (${rc}): ${err}")
  endif()
  set(${out} "${json}" PARENT_SCOPE)
endfunction()

function(field out json)
  string(JSON v ERROR_VARIABLE e GET "${json}" ${ARGN})
  if(e)
    message(FATAL_ERROR "JSON field ${ARGN}: ${e} in ${json}")
  endif()
  set(${out} "${v}" PARENT_SCOPE)
endfunction()

run_json(greedy -p "Hello world" -n 12 --temp 0)
run_json(greedy_plain -p "Hello world" -n 12 --temp 0 --no-speculative)
run_json(greedy_again -p "Hello world" -n 12 --temp 0)
field(ids "${greedy}" token_ids)
field(ids_plain "${greedy_plain}" token_ids)
field(ids_again "${greedy_again}" token_ids)
if(NOT ids STREQUAL ids_plain OR NOT ids STREQUAL ids_again)
  message(FATAL_ERROR "greedy outputs differ: ${ids} / ${ids_plain} / ${ids_again}")
endif()
field(n "${greedy}" tokens)
field(prompt_tps "${greedy}" prompt_tps)
field(gen_tps "${greedy}" gen_tps)
field(rate "${greedy}" acceptance_rate)
string(JSON rate_plain_type TYPE "${greedy_plain}" acceptance_rate)
field(text "${greedy}" text)
if(NOT n EQUAL 12 OR NOT prompt_tps GREATER 0 OR NOT gen_tps GREATER 0 OR rate LESS 0 OR rate GREATER 1
   OR NOT rate_plain_type STREQUAL "NULL")
  message(FATAL_ERROR "bad fields: tokens ${n}, prompt_tps ${prompt_tps}, gen_tps ${gen_tps}, "
                      "acceptance_rate ${rate} / ${rate_plain_type}")
endif()

# text is the detokenized ids.
string(JSON first GET "${greedy}" token_ids 0)
set(id_list "")
foreach(i RANGE 11)
  string(JSON t GET "${greedy}" token_ids ${i})
  string(APPEND id_list "${t},")
endforeach()
execute_process(COMMAND ${DSV4} detokenize -m ${MODEL} ${id_list} OUTPUT_VARIABLE detok)
if(NOT detok STREQUAL "${text}\n")
  message(FATAL_ERROR "text '${text}' is not the detokenized ids '${detok}'")
endif()

# The first token against eval's top-1 of the prompt's last position.
execute_process(COMMAND ${DSV4} tokenize -m ${MODEL} "Hello world" OUTPUT_VARIABLE prompt_ids
                OUTPUT_STRIP_TRAILING_WHITESPACE)
execute_process(COMMAND ${DSV4} eval ${MODEL} --tokens ${prompt_ids} --numerics llama.cpp
                OUTPUT_VARIABLE top1 OUTPUT_STRIP_TRAILING_WHITESPACE)
string(REGEX MATCH "([0-9]+)$" last "${top1}")
# tokenize does not add BOS; generate does: compare with BOS prepended.
execute_process(COMMAND ${DSV4} eval ${MODEL} --tokens 0,${prompt_ids} --numerics llama.cpp
                OUTPUT_VARIABLE top1_bos OUTPUT_STRIP_TRAILING_WHITESPACE)
string(REGEX MATCH "([0-9]+)$" last_bos "${top1_bos}")
if(NOT last_bos EQUAL first)
  message(FATAL_ERROR "first greedy token ${first}; eval's top-1 after BOS + prompt: ${last_bos}")
endif()

# Seeded sampling: the same seed twice gives the same tokens.
run_json(s1 -p "Hello world" -n 12 --temp 0.9 --seed 7)
run_json(s2 -p "Hello world" -n 12 --temp 0.9 --seed 7)
field(s1_ids "${s1}" token_ids)
field(s2_ids "${s2}" token_ids)
if(NOT s1_ids STREQUAL s2_ids)
  message(FATAL_ERROR "seed 7 twice: ${s1_ids} / ${s2_ids}")
endif()

# -f FILE: the prompt from a file (its last newline dropped).
file(WRITE ${CMAKE_CURRENT_BINARY_DIR}/generate_prompt.txt "Hello world\n")
run_json(from_file -f ${CMAKE_CURRENT_BINARY_DIR}/generate_prompt.txt -n 12 --temp 0)
field(file_ids "${from_file}" token_ids)
if(NOT file_ids STREQUAL ids)
  message(FATAL_ERROR "-f FILE: ${file_ids}, -p: ${ids}")
endif()
message(STATUS "generate checks passed: greedy ids ${ids}, acceptance ${rate}")
