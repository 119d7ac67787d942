-- Seed 002 (../shared/seeds/002_c8cf41034c0e4b6f.txt), section "🔍 주요 조회 예시":
-- its four example queries, copied verbatim (byte for byte, trailing spaces included).
-- tests/integration/test_seed_queries.py runs them with DB_SCHEMA=ai_vibe_coding_test, so
-- the schema name needs no substitution; only the example ids are replaced
-- (`session_id = 123`, `exam_id = 1 AND participant_id = 1`) by real ones.
-- Each query follows a `-- name: <title>` line holding its seed heading.

-- name: 특정 세션의 모든 평가 조회
SELECT 
    id,
    session_id,
    turn,
    evaluation_type,
    details->>'score' AS score,
    details->>'analysis' AS analysis,
    created_at
FROM ai_vibe_coding_test.prompt_evaluations 
WHERE session_id = 123 
ORDER BY turn NULLS LAST, created_at;

-- name: 턴별 평가 점수 조회
SELECT 
    turn,
    details->>'score' AS score,
    details->>'analysis' AS analysis,
    details->'intent_types' AS intent_types
FROM ai_vibe_coding_test.prompt_evaluations 
WHERE session_id = 123 
  AND evaluation_type = 'TURN_EVAL'
ORDER BY turn;

-- name: 전체 플로우 평가 조회
SELECT 
    details->>'score' AS holistic_flow_score,
    details->>'analysis' AS holistic_flow_analysis
FROM ai_vibe_coding_test.prompt_evaluations 
WHERE session_id = 123 
  AND evaluation_type = 'HOLISTIC_FLOW';

-- name: 세션 종료 여부 확인
SELECT 
    id,
    started_at,
    ended_at,
    CASE 
        WHEN ended_at IS NULL THEN '진행 중'
        ELSE '종료됨'
    END AS status
FROM ai_vibe_coding_test.prompt_sessions
WHERE exam_id = 1 AND participant_id = 1
ORDER BY started_at DESC;
